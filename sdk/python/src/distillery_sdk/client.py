"""The client: one method per route of the dataset API, typed with the models of :mod:`.models`."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import httpx

from .models import DocumentList, DocumentProgress, Export, Record, RecordPage, Stats, Upload


class DistilleryError(Exception):
    """A request the API refused or failed: its HTTP status and the ``{"error": {"code", "message"}}`` body."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class ExportFailed(DistilleryError):
    """An export that ended in ``failed``."""


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        err = response.json()["error"]
        code, message = str(err["code"]), str(err["message"])
    except Exception:  # not the API's error body (a proxy, a crash)
        code, message = "http_error", response.text[:500]
    raise DistilleryError(response.status_code, code, message)


class Client:
    """A client of ``distillery serve`` / ``distillery service api``.

    ``base_url`` and ``token`` default to ``DISTILLERY_API_URL`` and ``DISTILLERY_API_TOKEN``.
    """

    def __init__(
        self,
        base_url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        timeout: float = 60.0,
        transport: Optional[httpx.BaseTransport] = None,
    ):
        base_url = base_url or os.environ.get("DISTILLERY_API_URL") or "http://127.0.0.1:8080"
        token = token if token is not None else os.environ.get("DISTILLERY_API_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _get(self, path: str, **params: Any) -> Any:
        response = self._http.get(path, params={k: v for k, v in params.items() if v is not None})
        _raise_for(response)
        return response.json()

    # -- open routes

    def health(self) -> bool:
        """Whether the service is alive."""
        return self._http.get("/healthz").is_success

    def ready(self) -> bool:
        """Whether the service is ready (its dataset store answers)."""
        return self._http.get("/readyz").is_success

    def openapi(self) -> dict[str, Any]:
        """The service's OpenAPI 3.1 document."""
        return self._get("/openapi.json")

    # -- dataset

    def list_documents(self) -> list[DocumentProgress]:
        """Every document with its progress, by name."""
        return DocumentList.model_validate(self._get("/v1/documents")).documents

    def get_document(self, document_id: str) -> DocumentProgress:
        return DocumentProgress.model_validate(self._get(f"/v1/documents/{document_id}"))

    def document_records_page(
        self, document_id: str, *, after: Optional[str] = None, limit: Optional[int] = None
    ) -> RecordPage:
        """One page of a document's accepted and rejected records, in id order."""
        data = self._get(f"/v1/documents/{document_id}/records", after=after, limit=limit)
        return RecordPage.model_validate(data)

    def document_records(self, document_id: str, *, page_size: int = 100) -> Iterator[Record]:
        """Every accepted and rejected record of a document, fetching page after page."""
        after: Optional[str] = None
        while True:
            page = self.document_records_page(document_id, after=after, limit=page_size)
            yield from page.records
            if page.next_after is None:
                return
            after = page.next_after

    def stats(self) -> Stats:
        """The whole dataset's counts."""
        return Stats.model_validate(self._get("/v1/stats"))

    def upload(self, path: Union[str, Path], *, name: Optional[str] = None) -> Upload:
        """Uploads a document (its bytes; ``name`` defaults to the file's name)."""
        path = Path(path)
        response = self._http.post(
            "/v1/documents",
            params={"name": name or path.name},
            content=path.read_bytes(),
            headers={"Content-Type": "application/octet-stream"},
        )
        _raise_for(response)
        return Upload.model_validate(response.json())

    # -- exports

    def start_export(self, format: str) -> Export:
        """Starts an export (``alpaca``, ``sharegpt``, ``openai``, ``dpo``, ``parquet``, ``qa-json``, ...)."""
        response = self._http.post("/v1/exports", json={"format": format})
        _raise_for(response)
        return Export.model_validate(response.json())

    def get_export(self, export_id: str) -> Export:
        return Export.model_validate(self._get(f"/v1/exports/{export_id}"))

    def wait_export(self, export: Union[Export, str], *, timeout: float = 600.0, poll: float = 0.2) -> Export:
        """Waits until an export is done; raises :class:`ExportFailed` if it failed, ``TimeoutError`` past
        ``timeout`` seconds."""
        export_id = export.id if isinstance(export, Export) else export
        deadline = time.monotonic() + timeout
        while True:
            current = self.get_export(export_id)
            if current.status == "done":
                return current
            if current.status == "failed":
                raise ExportFailed(409, "export_failed", current.error or "the export failed")
            if time.monotonic() > deadline:
                raise TimeoutError(f"export {export_id} still running after {timeout} s")
            time.sleep(poll)

    def download_export(self, export: Union[Export, str], dest: Union[str, Path]) -> Path:
        """Streams a finished export's file to ``dest`` (a file path, or a folder to put it in under its
        own name); returns the file's path."""
        export_id = export.id if isinstance(export, Export) else export
        dest = Path(dest)
        with self._http.stream("GET", f"/v1/exports/{export_id}/download") as response:
            if not response.is_success:
                response.read()
                _raise_for(response)
            if dest.is_dir():
                disposition = response.headers.get("content-disposition", "")
                name = disposition.split("filename=")[-1].strip('"') if "filename=" in disposition else export_id
                dest = dest / name
            tmp = dest.with_name(dest.name + ".partial")
            with open(tmp, "wb") as f:
                for chunk in response.iter_bytes():
                    f.write(chunk)
            tmp.replace(dest)
        return dest
