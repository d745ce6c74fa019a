"""The z2jh 4.4 drop-in: what the chart and its hub pod do with a values file."""
