"""Serve the prebuilt OHIF viewer (npm @ohif/app dist) in front of an Orthanc DICOMweb API.

    python ohif_serve.py --dist DIR --orthanc http://127.0.0.1:PORT --port PORT

One origin for both (no CORS): ``/dicom-web/...`` and ``/wado...`` are passed to Orthanc,
``/app-config.js`` is generated to point OHIF's default data source at this server,
everything else comes from ``DIR`` with ``index.html`` for OHIF's client-side routes
(``/viewer?StudyInstanceUIDs=...``). Loopback only; for scripts/viewers/ohif_screenshot.mjs.
"""

from __future__ import annotations

import argparse
import http.server
import mimetypes
import urllib.error
import urllib.request
from pathlib import Path

APP_CONFIG = """window.config = {{
  routerBasename: null,
  extensions: [],
  modes: [],
  customizationService: {{}},
  showStudyList: true,
  maxNumberOfWebWorkers: 1,
  showWarningMessageForCrossOrigin: false,
  showCPUFallbackMessage: false,
  showLoadingIndicator: true,
  strictZSpacingForVolumeViewport: true,
  showErrorDetails: 'always',
  investigationalUseDialog: {{ option: 'never' }},
  defaultDataSourceName: 'orthanc',
  dataSources: [{{
    namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
    sourceName: 'orthanc',
    configuration: {{
      friendlyName: 'throw-away Orthanc',
      name: 'orthanc',
      wadoUriRoot: '{base}/wado',
      qidoRoot: '{base}/dicom-web',
      wadoRoot: '{base}/dicom-web',
      qidoSupportsIncludeField: false,
      imageRendering: 'wadors',
      thumbnailRendering: 'wadors',
      enableStudyLazyLoad: true,
      supportsFuzzyMatching: false,
      supportsWildcard: true,
      bulkDataURI: {{ enabled: true }},
      omitQuotationForMultipartRequest: true,
    }},
  }}],
}};
"""


def make_handler(dist: Path, orthanc: str, base: str) -> type[http.server.BaseHTTPRequestHandler]:
    """A request handler bound to ``dist`` and the Orthanc URL."""
    config = APP_CONFIG.format(base=base).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
            return

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _proxy(self) -> None:
            req = urllib.request.Request(orthanc + self.path, method=self.command,
                                         headers={k: v for k, v in self.headers.items()
                                                  if k.lower() in ("accept", "content-type")})
            try:
                with urllib.request.urlopen(req, timeout=120) as resp:
                    body = resp.read()
                    status, ctype = resp.status, resp.headers.get("Content-Type", "application/octet-stream")
            except urllib.error.HTTPError as err:
                body, status, ctype = err.read(), err.code, err.headers.get("Content-Type", "text/plain")
            self._send(status, body, ctype)

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            path = self.path.split("?", 1)[0]
            if path.startswith("/dicom-web/") or path.startswith("/wado"):
                self._proxy()
                return
            if path == "/app-config.js":
                self._send(200, config, "application/javascript")
                return
            file = (dist / path.lstrip("/")).resolve()
            if not file.is_file() or dist not in file.parents:
                file = dist / "index.html"
            ctype = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            if file.suffix == ".wasm":
                ctype = "application/wasm"
            self._send(200, file.read_bytes(), ctype)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, required=True)
    parser.add_argument("--orthanc", required=True, help="Orthanc's HTTP root, e.g. http://127.0.0.1:8042")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    base = f"http://127.0.0.1:{args.port}"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port),
                                             make_handler(args.dist.resolve(), args.orthanc.rstrip("/"), base))
    server.serve_forever()


if __name__ == "__main__":
    main()
