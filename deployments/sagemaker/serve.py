"""The Batch Transform side of the CLV image: SageMaker's container contract (HTTP on port 8080,
`GET /ping`, `POST /invocations`) around `inference.py`. The model is /opt/ml/model/model.pkl."""

from __future__ import annotations

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import inference


def make_handler(model):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the HTTP verb
            self._reply(200 if self.path == "/ping" else 404, b"", "text/plain")

        def do_POST(self):  # noqa: N802
            if self.path != "/invocations":
                return self._reply(404, b"", "text/plain")
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                frame = inference.input_fn(body, self.headers.get("Content-Type", "application/x-parquet"))
                text, content_type = inference.output_fn(inference.predict_fn(frame, model), "text/csv")
            except Exception as exc:  # noqa: BLE001 - report any failure of the request to SageMaker
                return self._reply(400, f"{type(exc).__name__}: {exc}".encode(), "text/plain")
            self._reply(200, text.encode(), content_type)

        def _reply(self, status: int, body: bytes, content_type: str):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # keep the job log to errors
            pass

    return Handler


def server(model_dir: str = "/opt/ml/model", port: int = 8080) -> ThreadingHTTPServer:
    return ThreadingHTTPServer(("0.0.0.0", port), make_handler(inference.model_fn(model_dir)))


def main() -> None:
    server(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"), int(os.environ.get("SAGEMAKER_BIND_TO_PORT", 8080))
           ).serve_forever()


if __name__ == "__main__":
    main()
