// appkit studio, Storage: drag and drop onto the upload form, and resumable chunked uploads of large files.
// Without JavaScript the form posts the files as they are.
(function () {
  var CHUNK = 4 * 1024 * 1024;

  function hexId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function status(form, text) {
    var el = document.getElementById("upload-progress");
    if (el) { el.textContent = text; }
  }

  // Send one file in chunks; after a failed request ask the server how much it holds and go on from there.
  async function sendChunked(form, file, prefix, token, upsert) {
    var id = hexId();
    var base = form.dataset.chunks + "?id=" + id + "&total=" + file.size +
      "&path=" + encodeURIComponent(prefix + file.name) + (upsert ? "&upsert=on" : "");
    var offset = 0, failures = 0;
    while (offset < file.size) {
      var body = file.slice(offset, Math.min(offset + CHUNK, file.size));
      var response;
      try {
        response = await fetch(base + "&offset=" + offset, {
          method: "POST", body: body, credentials: "same-origin",
          headers: {"X-CSRF-Token": token, "Content-Type": "application/octet-stream"}
        });
      } catch (err) {
        response = null;
      }
      if (response && (response.ok || response.status === 409)) {
        offset = (await response.json()).offset;
        failures = 0;
      } else if (response && response.status < 500 && response.status !== 429) {
        throw new Error(file.name + ": " + response.status + " " + (await response.text()).slice(0, 300));
      } else {
        failures += 1;
        if (failures > 5) { throw new Error(file.name + ": the upload keeps failing; try again to resume"); }
        await new Promise(function (r) { setTimeout(r, 500 * failures); });
        var probe = await fetch(base + "&offset=0", {credentials: "same-origin"});
        if (probe.ok) { offset = (await probe.json()).offset; }
      }
      status(form, "Uploading " + file.name + ": " + Math.floor(100 * offset / file.size) + "%");
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("upload");
    var input = document.getElementById("file");
    var zone = document.getElementById("dropzone");
    if (!form || !input) { return; }
    if (zone) {
      ["dragenter", "dragover"].forEach(function (name) {
        zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.add("over"); });
      });
      ["dragleave", "drop"].forEach(function (name) {
        zone.addEventListener(name, function () { zone.classList.remove("over"); });
      });
      zone.addEventListener("drop", function (event) {
        event.preventDefault();
        if (event.dataTransfer && event.dataTransfer.files.length) {
          input.files = event.dataTransfer.files;
          form.requestSubmit();
        }
      });
    }
    form.addEventListener("submit", async function (event) {
      var threshold = Number(form.dataset.chunkedFrom);
      var files = Array.prototype.slice.call(input.files);
      if (!files.some(function (f) { return f.size >= threshold; })) { return; }  // the plain form post
      event.preventDefault();
      var token = form.querySelector("input[name=csrf_token]").value;
      var prefix = form.querySelector("input[name=prefix]").value;
      var upsert = form.querySelector("input[name=upsert]").checked;
      try {
        for (var i = 0; i < files.length; i++) { await sendChunked(form, files[i], prefix, token, upsert); }
        var names = files.map(function (f) { return f.name; }).join(", ");
        window.location.assign(form.dataset.folder + "?flash=" + encodeURIComponent("Uploaded " + names + "."));
      } catch (err) {
        status(form, String(err.message || err));
      }
    });
  });
})();
