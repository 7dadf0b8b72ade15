// appkit studio: small progressive enhancements (the pages work without JavaScript).
// Forms with data-confirm ask before submitting (delete, ban, purge ...).
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
}, true);
