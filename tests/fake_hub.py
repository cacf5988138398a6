"""A loopback stand-in for the Hugging Face Hub's HTTP API: just enough for `create_repo`,
`dataset_info`, `list_repo_files` and `upload_folder` over the LFS protocol (with deletions), recording
every request it receives and keeping the repo's files across commits.

It also serves model repos (`add_model`) to `snapshot_download` and `model_info`: a model's info at
a revision (its commit sha), its file tree at a commit, and each file's HEAD and GET under
/OWNER/NAME/resolve/COMMIT/PATH with the headers huggingface_hub checks (X-Repo-Commit, ETag,
Content-Length). An unknown repo, revision or file gets the Hub's 404 with its X-Error-Code.

It can also fail on purpose: `fail=<status>` answers that HTTP status, `fail="hang"` answers
nothing until the test ends, `fail="drop"` closes the connection without an answer; `fail_on` limits
the failure to paths containing it (e.g. "/commit/": everything is uploaded, the commit is refused).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import yaml


class FakeHub:
    def __init__(self, existing_card: dict | None = None, fail: int | str | None = None, fail_on: str = ""):
        self.requests: list[dict] = []  # method, path, headers, body
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> uploaded bytes
        self.commits: list[list[dict]] = []  # NDJSON lines of each commit
        self.files: dict[str, bytes] = {}  # the repo's files after the commits so far
        self.existing_card = existing_card  # cardData of a repo that already exists, or None
        self.created: list[dict] = []
        self.validated: list[dict] = []  # README.md contents sent to /api/validate-yaml
        self.models: dict[str, dict[str, dict[str, bytes]]] = {}  # model repo id -> commit -> {path: content}
        self.branches: dict[str, dict[str, str]] = {}  # model repo id -> branch -> commit
        self.fail, self.fail_on = fail, fail_on
        self._release = threading.Event()  # ends a "hang"
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def add_model(self, repo_id: str, files: dict[str, bytes], branch: str = "main") -> str:
        """Commits `files` (path -> content) to the model repo `repo_id` as the new head of `branch`;
        returns the commit's sha."""
        digest = hashlib.sha1(repo_id.encode())
        for path, content in sorted(files.items()):
            digest.update(path.encode() + b"\0" + hashlib.sha256(content).digest())
        commit = digest.hexdigest()
        self.models.setdefault(repo_id, {})[commit] = dict(files)
        self.branches.setdefault(repo_id, {})[branch] = commit
        return commit

    def model_file_requests(self) -> list[str]:
        """The paths of the model files asked for (HEAD or GET), in order."""
        return [unquote(r["path"]).split("/resolve/", 1)[1].split("/", 1)[1] for r in self.requests
                if "/resolve/" in r["path"]]

    def committed_files(self) -> dict[str, bytes]:
        """path -> content of every file in the repo now (LFS files resolved to their uploaded bytes)."""
        return dict(self.files)

    def _commit(self, lines: list[dict]) -> None:
        self.commits.append(lines)
        for line in lines:
            value = line["value"]
            if line["key"] == "file":
                self.files[value["path"]] = base64.b64decode(value["content"])
            elif line["key"] == "lfsFile":
                self.files[value["path"]] = self.lfs_objects[value["oid"]]
            elif line["key"] == "deletedFile":
                del self.files[value["path"]]

    def _card_data(self) -> dict | None:
        """The committed card's YAML, else the card of a repo said to exist already, else None (no repo)."""
        card = self.files.get("README.md")
        if card is not None:
            return yaml.safe_load(card.decode().split("---")[1])
        if self.existing_card is not None:
            return self.existing_card
        return {} if self.commits else None

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _reply(self, status: int, payload=None, headers: dict | None = None):
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _record(self, body: bytes):
                hub.requests.append({"method": self.command, "path": self.path,
                                     "headers": {k.lower(): v for k, v in self.headers.items()},
                                     "body": body})

            def _failed(self) -> bool:
                """Fails this request as the test asked; True when it did."""
                if hub.fail is None or hub.fail_on not in self.path:
                    return False
                if hub.fail == "hang":
                    hub._release.wait()
                    self.close_connection = True
                elif hub.fail == "drop":
                    self.close_connection = True
                else:
                    self._reply(hub.fail, {"error": f"{HTTPStatus(hub.fail).phrase} (planted by the test)"})
                return True

            def _model(self, repo: str, revision: str) -> tuple[str, dict[str, bytes]] | None:
                """(commit, files) of a model repo at a revision, or None after answering the Hub's 404."""
                if repo not in hub.models:
                    self._reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                    return None
                commit = revision if revision in hub.models[repo] else hub.branches[repo].get(revision)
                if commit is None:
                    self._reply(404, {"error": f"Invalid rev id: {revision}"}, {"X-Error-Code": "RevisionNotFound"})
                    return None
                return commit, hub.models[repo][commit]

            def _model_api(self, path: str) -> None:
                """/api/models/OWNER/NAME[/revision/REV | /tree/REV]: info at a revision, or the file tree."""
                parts = path[len("/api/models/"):].split("/")
                repo, rest = "/".join(parts[:2]), parts[2:]
                found = self._model(repo, rest[1] if len(rest) == 2 else "main")
                if found is None:
                    return
                commit, files = found
                if rest[:1] == ["tree"]:
                    folders = sorted({name.rsplit("/", 1)[0] for name in files if "/" in name})
                    self._reply(200, [{"type": "directory", "path": f, "oid": "0" * 40} for f in folders] + [
                        {"type": "file", "path": name, "size": len(content), "oid": _git_oid(content),
                         **({"lfs": {"oid": hashlib.sha256(content).hexdigest(), "size": len(content),
                                     "pointerSize": 134}} if name.endswith(".safetensors") else {})}
                        for name, content in sorted(files.items())])
                else:
                    self._reply(200, {"id": repo, "sha": commit, "private": False,
                                      "siblings": [{"rfilename": name} for name in sorted(files)]})

            def _model_file(self, path: str, with_body: bool) -> None:
                """/OWNER/NAME/resolve/REV/PATH: a file's headers (HEAD) or its content (GET)."""
                repo, _, rest = path.lstrip("/").partition("/resolve/")
                revision, _, name = rest.partition("/")
                found = self._model(repo, revision)
                if found is None:
                    return
                commit, files = found
                if name not in files:
                    self._reply(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
                    return
                content = files[name]
                etag = hashlib.sha256(content).hexdigest() if name.endswith(".safetensors") else _git_oid(content)
                self.send_response(200)
                for key, value in {"Content-Type": "application/octet-stream", "Content-Length": str(len(content)),
                                   "ETag": f'"{etag}"', "X-Repo-Commit": commit}.items():
                    self.send_header(key, value)
                self.end_headers()
                if with_body:
                    self.wfile.write(content)

            def do_HEAD(self):  # noqa: N802
                self._record(b"")
                if self._failed():
                    return
                self._model_file(unquote(self.path.split("?")[0]), with_body=False)

            def do_GET(self):  # noqa: N802
                self._record(b"")
                if self._failed():
                    return
                path = unquote(self.path.split("?")[0])
                if path.startswith("/api/models/"):
                    self._model_api(path)
                elif "/resolve/" in path:
                    self._model_file(path, with_body=True)
                elif "/tree/" in path:  # list_repo_files
                    self._reply(200, [{"type": "file", "path": name, "size": len(content),
                                       "oid": hashlib.sha1(content).hexdigest()} for name, content in sorted(hub.files.items())])
                elif path.startswith("/api/datasets/"):
                    repo = path[len("/api/datasets/"):]
                    card = hub._card_data()
                    if card is None:
                        self._reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                    else:
                        self._reply(200, {"id": repo, "sha": "0" * 40, "private": True, "cardData": card,
                                          "siblings": [{"rfilename": name} for name in sorted(hub.files)]})
                else:
                    self._reply(404, {"error": "not found"})

            def do_POST(self):  # noqa: N802
                body = self._body()
                self._record(body)
                if self._failed():
                    return
                path = self.path.split("?")[0]
                if path == "/api/repos/create":
                    payload = json.loads(body)
                    hub.created.append(payload)
                    repo = f"{payload.get('organization')}/{payload['name']}"
                    self._reply(200, {"url": f"{hub.url}/datasets/{repo}", "name": repo})
                elif path == "/api/validate-yaml":  # the Hub checks README.md metadata before a commit
                    hub.validated.append(json.loads(body))
                    self._reply(200, {"errors": [], "warnings": []})
                elif "/preupload/" in path:
                    files = json.loads(body)["files"]
                    self._reply(200, {"files": [{"path": f["path"], "uploadMode": "lfs" if f["path"].endswith(".parquet")
                                                 else "regular", "shouldIgnore": False} for f in files]})
                elif path.endswith(".git/info/lfs/objects/batch"):
                    objects = json.loads(body)["objects"]
                    self._reply(200, {"transfer": "basic", "objects": [
                        {"oid": o["oid"], "size": o["size"], "authenticated": True,
                         "actions": {"upload": {"href": f"{hub.url}/lfs-upload/{o['oid']}"}}} for o in objects]})
                elif "/commit/" in path:
                    hub._commit([json.loads(line) for line in body.decode().splitlines() if line.strip()])
                    repo = path[len("/api/datasets/"):].split("/commit/")[0]
                    self._reply(200, {"commitUrl": f"{hub.url}/datasets/{repo}/commit/{'1' * 40}",
                                      "commitOid": "1" * 40, "pullRequestUrl": None})
                else:
                    self._reply(404, {"error": f"unexpected POST {path}"})

            def do_PUT(self):  # noqa: N802
                body = self._body()
                self._record(body)
                if self._failed():
                    return
                oid = self.path.rsplit("/", 1)[-1]
                if hashlib.sha256(body).hexdigest() != oid:
                    self._reply(400, {"error": "sha256 mismatch"})
                    return
                hub.lfs_objects[oid] = body
                self._reply(200, {})

            def log_message(self, *args):
                pass

        return Handler


def _git_oid(content: bytes) -> str:
    """A file's git blob id, as the Hub gives it for a file that is not in LFS."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
