"""The spawn form template with GPU availability (PlatformSpawner's default ``profile_form_template``).

KubeSpawner's own ``form.html`` plus, for each GPU profile, what is free and, for anything the
user cannot have, a ``disabled`` control and a visible reason. KubeSpawner renders it with its
Jinja2 environment (so ``{% include 'style.css' %}`` finds KubeSpawner's stylesheet), with
``profile_list`` (each profile carrying ``gpu_view``, see
:class:`jhplatform.policy.profiles.ProfileView`) and ``user_options``.

Stable hooks for tests and for admins who style or script the form:

=====================================================  ==========================================
``label#profile-<slug>``                               each profile; for GPU profiles also
                                                       ``data-gpu-resource``, ``data-gpu-type``,
                                                       ``data-gpu-available="true|false"``,
                                                       ``data-gpu-free``, ``data-gpu-total`` (when
                                                       capacity is known), ``data-gpu-user-used``,
                                                       ``data-gpu-user-cap`` (when capped) and
                                                       ``data-gpu-reason`` (why it is disabled)
``input#profile-item-<slug>``                          the radio button; ``disabled`` when the
                                                       user cannot have the profile
``#gpu-availability-<slug>``                           "3 of 8 A100 free · you use 0 of 1"
``#gpu-reason-<slug>``                                 why the profile is disabled (only then)
``select#profile-option-<slug>--<option>``             the GPU-count option; each ``<option>`` has
                                                       ``data-gpu-count``, ``data-gpu-available``
                                                       and, when disabled, ``disabled`` and
                                                       ``data-gpu-reason``
``#gpu-reason-<slug>--<option>--<choice>``             why that choice is disabled (only then)
=====================================================  ==========================================

Dynamic text is escaped (group names come from the identity provider).
"""

FORM_TEMPLATE = r"""<style>{% include 'style.css' %}
#kubespawner-profiles-list .gpu-availability { margin: 0.25em 0; font-weight: 600; }
#kubespawner-profiles-list .gpu-unavailable-reason,
#kubespawner-profiles-list .gpu-choice-reasons { color: #a94442; margin: 0.25em 0; }
#kubespawner-profiles-list .gpu-choice-reasons { padding-left: 1.2em; }
#kubespawner-profiles-list .profile.gpu-disabled { opacity: 0.65; cursor: not-allowed; }
</style>
<div class="form-group" id="kubespawner-profiles-list">
  {%- for profile in profile_list %}
    {%- set gv = profile.gpu_view or {} %}
    <label for="profile-item-{{ profile.slug }}" id="profile-{{ profile.slug }}"
           class="profile js-profile-label{% if gv.gpu %} gpu-profile{% endif %}{% if gv and not gv.available %} gpu-disabled{% endif %}"
           {%- if gv.gpu %}
           data-gpu-resource="{{ gv.resource|e }}" data-gpu-type="{{ gv.type|e }}"
           data-gpu-available="{{ 'true' if gv.available else 'false' }}"
           {%- if gv.total is not none %} data-gpu-free="{{ [gv.free, 0]|max }}" data-gpu-total="{{ gv.total }}"{% endif %}
           data-gpu-user-used="{{ gv.user_used }}"
           {%- if gv.user_cap is not none %} data-gpu-user-cap="{{ gv.user_cap }}"{% endif %}
           {%- if gv.reason_code %} data-gpu-reason="{{ gv.reason_code }}"{% endif %}
           {%- endif %}>
      <div class="radio">
        <input type="radio"
               name="profile"
               id="profile-item-{{ profile.slug }}"
               value="{{ profile.slug }}"
               {%- if gv %}{% if gv.checked %} checked{% endif %}
               {%- elif user_options.profile == profile.slug %} checked{% elif not user_options.profile and profile.default %} checked{% endif %}
               {%- if gv and not gv.available %} disabled aria-describedby="gpu-reason-{{ profile.slug }}"{% endif %} />
      </div>
      <div>
        <h3>{{ profile.display_name }}</h3>
        {%- if profile.description %}<p>{{ profile.description }}</p>{%- endif %}
        {%- if gv.gpu %}
          <p class="gpu-availability" id="gpu-availability-{{ profile.slug }}">{{ gv.text|e }}</p>
          {%- if not gv.available %}
          <p class="gpu-unavailable-reason" id="gpu-reason-{{ profile.slug }}" role="note">{{ gv.reason|e }}</p>
          {%- endif %}
        {%- endif %}
        {%- if profile.profile_options %}
          <div>
            {%- for k, option in profile.profile_options.items() %}
              {%- set gpu_option = gv.gpu and gv.option == k %}
              <div class="js-options-container">
                <div class="option">
                  <label for="profile-option-{{ profile.slug }}--{{ k }}"
                         class="js-profile-option-label">{{ option.display_name }}</label>
                  <select name="profile-option-{{ profile.slug }}--{{ k }}"
                          id="profile-option-{{ profile.slug }}--{{ k }}"
                          class="form-control js-profile-option-select{% if gpu_option %} js-gpu-option{% endif %}"
                          {%- if gv and not gv.available %} disabled{% endif %}>
                    {%- for ck, choice in option['choices'].items() %}
                      {%- if gpu_option and ck in gv.choices %}
                        {%- set cv = gv.choices[ck] %}
                      <option value="{{ ck }}" data-gpu-count="{{ cv.count }}" data-gpu-available="{{ 'true' if cv.available else 'false' }}"
                              {%- if cv.selected %} selected{% endif %}
                              {%- if not cv.available %} disabled data-gpu-reason="{{ cv.reason_code }}"{% endif %}>{{ choice.display_name }}{% if not cv.available %} (not available){% endif %}</option>
                      {%- else %}
                      <option value="{{ ck }}" {% if choice.default %}selected{% endif %}>{{ choice.display_name }}</option>
                      {%- endif %}
                    {%- endfor %}
                    {%- if option['unlisted_choice']['enabled'] %}
                      <option value="unlisted-choice">{{ option['unlisted_choice']['display_name_in_choices'] }}</option>
                    {%- endif %}
                  </select>
                </div>
                {%- if gpu_option and gv.available %}
                  {%- set unavailable = gv.choices.values()|rejectattr('available')|list %}
                  {%- if unavailable %}
                  <ul class="gpu-choice-reasons" id="gpu-reasons-{{ profile.slug }}--{{ k }}">
                    {%- for cv in unavailable %}
                    <li id="gpu-reason-{{ profile.slug }}--{{ k }}--{{ cv.value }}" data-gpu-reason="{{ cv.reason_code }}">{{ option['choices'][cv.value].display_name }}: {{ cv.reason|e }}</li>
                    {%- endfor %}
                  </ul>
                  {%- endif %}
                {%- endif %}
                {%- if option['unlisted_choice']['enabled'] %}
                  <div class="option hidden js-other-input-container">
                    <label for="profile-option-{{ profile.slug }}--{{ k }}--unlisted-choice">
                      {{ option['unlisted_choice']['display_name'] }}
                    </label>
                    <input data-name="profile-option-{{ profile.slug }}--{{ k }}--unlisted-choice"
                           id="profile-option-{{ profile.slug }}--{{ k }}--unlisted-choice"
                           {%- if option['unlisted_choice']['validation_regex'] %}
                           pattern="{{ option['unlisted_choice']['validation_regex'] }}"
                           {%- endif %}
                           title="{{ option['unlisted_choice']['validation_message'] }}"
                           class="form-control js-other-input" />
                  </div>
                {%- endif %}
              </div>
            {%- endfor %}
          </div>
        {%- endif %}
      </div>
    </label>
  {%- endfor %}
</div>
<script>
  const userOptions = {{ user_options|tojson }};
  $('.js-profile-option-select, .js-profile-option-label').click(function() {
    // select the profile when a <select> inside it is clicked, unless the profile is disabled
    const $radio = $(this).parents('.js-profile-label').find('input[type=radio]');
    if (!$radio.prop('disabled')) {
      $radio.prop('checked', true);
    }
  });

  // If the user selects "Other" in the dropdown, show the free text field
  $('.js-profile-option-select').change(function() {
    const selectionValue = $(this).val();
    const $otherInputContainer = $(this).parents('.js-options-container').find('.js-other-input-container');
    const $otherInput = $(this).parents('.js-options-container').find('.js-other-input');
    if (selectionValue === 'unlisted-choice') {
      $(this).data('name', $(this).attr('name'));
      $(this).removeAttr('name');
      $otherInput.attr('name', $otherInput.data('name'));
      $otherInputContainer.removeClass('hidden');
    } else {
      $otherInput.removeAttr('name');
      $(this).attr('name', $(this).data('name'));
      $otherInputContainer.addClass('hidden');
    }
  });

  $(document).ready(() => {
    // Pre-select options from previously saved user_options, but never a disabled GPU choice
    // (the server already selected the best available one).
    const savedProfile = userOptions && userOptions.profile;
    if (savedProfile) {
      $(`label[for="profile-item-${savedProfile}"] .js-profile-option-select`).not('.js-gpu-option').each(function() {
        const optionKey = $(this).attr('name').split('--').pop();
        const unlistedValue = userOptions[optionKey + '--unlisted-choice'];
        const savedValue = userOptions[optionKey];
        if (unlistedValue) {
          $(this).val('unlisted-choice');
          $(this).parents('.js-options-container').find('.js-other-input').val(unlistedValue);
        } else if (savedValue) {
          $(this).val(savedValue);
        }
      });
    }
    $('.js-profile-option-select').trigger('change');
  });
</script>
"""
