"""The authenticator wing: PlatformAuthenticator (OpenID Connect, groups from the provider)."""

from .authenticator import PlatformAuthenticator

__all__ = ["PlatformAuthenticator"]
