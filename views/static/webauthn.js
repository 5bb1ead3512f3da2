// Runs the WebAuthn ceremony of the page (served from 'self': the Content-Security-Policy forbids inline
// scripts). The options come from <script type="application/json" id="webauthn-options">; the browser's
// answer is put, as JSON, in the form's hidden "response" field and the form is submitted. The button
// is rendered disabled and enabled here, once its handler is bound.
(() => {
  const form = document.querySelector('form[data-webauthn]');
  const optionsElement = document.getElementById('webauthn-options');
  const button = document.getElementById('webauthn-start');
  const status = document.getElementById('webauthn-status');
  if (!form || !optionsElement || !button || !status) return;
  const lib = window.SimpleWebAuthnBrowser;
  const say = (text, isError) => {
    status.textContent = text;
    status.className = isError ? 'error' : '';
    if (isError) status.setAttribute('role', 'alert');
  };
  if (!lib?.browserSupportsWebAuthn()) {
    say(form.dataset.msgUnsupported, true);
    button.disabled = true;
    return;
  }
  const optionsJSON = JSON.parse(optionsElement.textContent);
  let running = false;
  button.addEventListener('click', async () => {
    if (running) return;
    running = true;
    button.disabled = true;
    say(form.dataset.msgProgress, false);
    try {
      const response =
        form.dataset.webauthn === 'register'
          ? await lib.startRegistration({ optionsJSON })
          : await lib.startAuthentication({ optionsJSON });
      form.elements.namedItem('response').value = JSON.stringify(response);
      form.submit();
    } catch (error) {
      say(`${form.dataset.msgError} (${error?.name ?? 'Error'})`, true);
      button.disabled = false;
      running = false;
    }
  });
  // The button stays disabled until this script has bound it: a click can never be lost.
  button.disabled = false;
  button.focus();
})();
