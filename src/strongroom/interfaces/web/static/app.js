// Strongroom web UI: uploads with a progress bar, from the file picker or by drag and drop.
// Each file goes up as the raw body of a PUT to the drop zone's data-upload-url plus its name,
// with the page's CSRF token in a header, one file after another.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // Return the error text of a failed upload: the detail line of our error page, if it is one.
  function errorText(xhr) {
    try {
      var page = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var detail = page.getElementById("error-detail");
      if (detail) {
        return detail.textContent.trim();
      }
    } catch (ignored) {
      // Not HTML: fall back to the status line below.
    }
    return "the server answered " + xhr.status + " " + xhr.statusText;
  }

  function putFile(url, file, onProgress) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      xhr.open("PUT", url);
      xhr.setRequestHeader("X-CSRF-Token", csrfToken());
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable) {
          onProgress(event.loaded);
        }
      });
      xhr.addEventListener("load", function () {
        if (xhr.status >= 200 && xhr.status < 300) {
          onProgress(file.size);
          resolve();
        } else {
          reject(new Error(errorText(xhr)));
        }
      });
      xhr.addEventListener("error", function () {
        reject(new Error("the connection failed; check the network and try again"));
      });
      xhr.send(file);
    });
  }

  function refreshListing() {
    if (window.htmx && document.getElementById("listing")) {
      window.htmx.ajax("GET", window.location.pathname + window.location.search, {
        target: "#listing",
        select: "#listing",
        swap: "outerHTML",
      });
    } else {
      window.location.reload();
    }
  }

  async function uploadAll(zone, files) {
    var progress = zone.querySelector("progress");
    var status = zone.querySelector(".status");
    var total = 0;
    for (var i = 0; i < files.length; i++) {
      total += files[i].size;
    }
    var done = 0;
    progress.hidden = false;
    progress.value = 0;
    zone.setAttribute("aria-busy", "true");
    try {
      for (var j = 0; j < files.length; j++) {
        var file = files[j];
        status.textContent = "Uploading " + file.name + " (" + (j + 1) + " of " + files.length + ")…";
        await putFile(zone.dataset.uploadUrl + encodeURIComponent(file.name), file, function (sent) {
          progress.value = total ? Math.round(((done + sent) * 100) / total) : 100;
        });
        done += file.size;
      }
      progress.value = 100;
      status.textContent = "Uploaded " + files.length + (files.length === 1 ? " file." : " files.");
      refreshListing();
    } catch (error) {
      status.textContent = "Upload failed: " + error.message;
    } finally {
      zone.removeAttribute("aria-busy");
    }
  }

  function bindDropZone(zone) {
    if (zone.dataset.bound) {
      return;
    }
    zone.dataset.bound = "true";
    var input = zone.querySelector('input[type="file"]');
    input.addEventListener("change", function () {
      if (input.files.length) {
        uploadAll(zone, Array.prototype.slice.call(input.files));
        input.value = "";
      }
    });
    zone.addEventListener("dragover", function (event) {
      event.preventDefault();
      zone.classList.add("dragging");
    });
    zone.addEventListener("dragleave", function () {
      zone.classList.remove("dragging");
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      zone.classList.remove("dragging");
      var files = event.dataTransfer ? Array.prototype.slice.call(event.dataTransfer.files) : [];
      if (files.length) {
        uploadAll(zone, files);
      }
    });
  }

  function bindAll(root) {
    var zones = (root || document).querySelectorAll("[data-upload-url]");
    for (var i = 0; i < zones.length; i++) {
      bindDropZone(zones[i]);
    }
  }

  if (window.htmx) {
    // Runs for the first page and for every part htmx swaps in.
    window.htmx.onLoad(bindAll);
  } else {
    document.addEventListener("DOMContentLoaded", function () {
      bindAll(document);
    });
  }
})();
