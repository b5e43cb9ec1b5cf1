"""A small in-memory Hugging Face Hub on loopback, for testing pushes and downloads with the real client.

It implements the endpoints ``huggingface_hub`` 2.x calls for ``create_repo``, ``create_branch``,
``create_commit`` / ``upload_folder`` (``/api/validate-yaml``, ``preupload``, the git-LFS batch API with basic
PUT uploads and ``verify``, and the NDJSON ``commit``), ``repo_info``, ``list_repo_tree``, ``hf_hub_download``
(``HEAD`` / ``GET`` on ``resolve/``) and ``snapshot_download``. Files are kept per commit, byte for byte, so a
test can compare what arrived with what was sent.

Protocol choices, as the real Hub makes them: ``*.safetensors`` (and anything over 10 MB) is ``lfs``, the rest
``regular``; the client is expected to run with Xet disabled (``HF_HUB_DISABLE_XET``), so LFS content goes
through the batch API. Unknown tokens get the Hub's 401 ("Invalid credentials in Authorization header").

Faults: ``server.drop_next(method, path_regex)`` closes the connection of the next matching request after
reading half of its body, without answering, like a network cut in the middle of an upload.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".npz")
LFS_MIN_SIZE = 10 * 1024 * 1024
KNOWN_LICENSES = {
    "apache-2.0",
    "mit",
    "bsd-3-clause",
    "cc-by-4.0",
    "cc-by-nc-4.0",
    "cc-by-sa-4.0",
    "gpl-3.0",
    "llama3",
    "gemma",
    "openrail",
    "other",
    "unknown",
}  # a subset of the Hub's licence ids: enough to reject a made-up one
REPO_ID = r"(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)"


def git_blob_sha1(content: bytes) -> str:
    """Git's object id of a blob (what the Hub reports as a regular file's ``oid``)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass
class StoredFile:
    content: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def blob_id(self) -> str:
        return git_blob_sha1(lfs_pointer(self.sha256, len(self.content)) if self.lfs else self.content)

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.blob_id


@dataclass
class Commit:
    oid: str
    parent: str | None
    message: str
    files: dict[str, StoredFile]


@dataclass
class Repo:
    repo_id: str
    private: bool
    gated: str | bool = False
    """``False``, or the Hub's ``"auto"`` / ``"manual"``: files then need a token in ``granted``."""
    granted: set[str] = field(default_factory=set)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)
    lfs_objects: dict[str, bytes] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        oid = self.branches.get(revision, self.tags.get(revision, revision))
        return self.commits.get(oid)


class HubState:
    """Everything the server knows; guarded by one lock."""

    def __init__(self, tokens: set[str]) -> None:
        self.tokens = set(tokens)
        self.read_only_tokens: set[str] = set()
        """Valid tokens without write access: writes answer 403, as the Hub does for a read token."""
        self.repos: dict[str, Repo] = {}
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        self.faults: list[tuple[str, re.Pattern[str]]] = []
        self._counter = itertools.count()

    def new_commit(
        self, repo: Repo, parent: str | None, message: str, files: dict[str, StoredFile], oid: str | None = None
    ) -> Commit:
        seed = f"{repo.repo_id}/{next(self._counter)}/{parent}/{message}".encode()
        commit = Commit(oid or hashlib.sha1(seed).hexdigest(), parent, message, files)
        repo.commits[commit.oid] = commit
        return commit

    def commits_on(self, repo_id: str, branch: str = "main") -> list[Commit]:
        """Commits reachable from ``branch``, newest first (the initial empty commit included)."""
        repo = self.repos[repo_id]
        out, oid = [], repo.branches.get(branch)
        while oid is not None:
            commit = repo.commits[oid]
            out.append(commit)
            oid = commit.parent
        return out

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """Path -> bytes at ``revision``: what arrived on the server."""
        commit = self.repos[repo_id].resolve(revision)
        if commit is None:
            raise KeyError(f"{repo_id} has no revision {revision}")
        return {path: f.content for path, f in commit.files.items()}


class _Reply(Exception):
    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    # --- plumbing -------------------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _read_body(self, limit: int | None = None) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
                if limit is not None and sum(map(len, chunks)) >= limit:
                    break
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length if limit is None else min(limit, length))

    def _dispatch(self, method: str) -> None:
        state = self.server.state
        path = urlsplit(self.path).path
        with state.lock:
            state.requests.append((method, path))
            fault = next((f for f in state.faults if f[0] == method and f[1].search(path)), None)
            if fault is not None:
                state.faults.remove(fault)
        if fault is not None:
            length = int(self.headers.get("Content-Length") or 0)
            self._read_body(limit=max(1, length // 2))
            self.close_connection = True
            self.connection.close()
            return
        try:
            body = self._read_body() if method in ("POST", "PUT") else b""
            with state.lock:
                self._route(method, path, body)
            raise _Reply(404, {"error": f"no route for {method} {path}"})
        except _Reply as reply:
            self._send(method, reply)

    def _send(self, method: str, reply: _Reply) -> None:
        if isinstance(reply.body, bytes):
            payload, content_type = reply.body, "application/octet-stream"
        else:
            payload = json.dumps(reply.body if reply.body is not None else {}).encode()
            content_type = "application/json"
        self.send_response(reply.status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(payload)

    def _base(self) -> str:
        return self.server.base_url

    def _auth(self, required: bool) -> str | None:
        header = self.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else None
        state = self.server.state
        if token is not None and token not in state.tokens | state.read_only_tokens:
            raise _Reply(
                401,
                {"error": "Invalid credentials in Authorization header"},
                {"X-Error-Message": "Invalid credentials in Authorization header"},
            )
        if required and token is None:
            raise _Reply(401, {"error": "You must be authenticated"}, {"X-Error-Message": "Unauthorized"})
        if required and token in self.server.state.read_only_tokens:
            raise _Reply(403, {"error": "You don't have the rights to create or write to this repository"})
        return token

    def _repo(self, repo_id: str, *, write: bool) -> Repo:
        token = self._auth(required=write)
        repo = self.server.state.repos.get(repo_id)
        if repo is None or (repo.private and token is None):
            raise _Reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        return repo

    def _check_access(self, repo: Repo) -> None:
        """A gated repository's files need a token the owner granted access to (the Hub's 403 GatedRepo)."""
        if not repo.gated:
            return
        token = self._auth(required=False)
        if token not in repo.granted:
            raise _Reply(
                403,
                {"error": f"Access to model {repo.repo_id} is restricted. You must have access to it."},
                {"X-Error-Code": "GatedRepo", "X-Error-Message": "Access restricted"},
            )

    def _commit(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(unquote(revision))
        if commit is None:
            raise _Reply(404, {"error": f"Invalid rev id: {revision}"}, {"X-Error-Code": "RevisionNotFound"})
        return commit

    # --- routes ---------------------------------------------------------------------------------------------
    def _route(self, method: str, path: str, body: bytes) -> None:
        query = parse_qs(urlsplit(self.path).query)
        if method == "POST" and path == "/api/repos/create":
            self._create_repo(json.loads(body))
        if method == "POST" and path == "/api/validate-yaml":
            self._validate_yaml(json.loads(body))
        if method == "GET" and path == "/api/whoami-v2":
            self._auth(required=True)
            raise _Reply(200, {"type": "user", "name": "tester", "auth": {"accessToken": {"role": "write"}}})
        if m := re.fullmatch(rf"/api/models/{REPO_ID}/preupload/(?P<rev>[^/]+)", path):
            self._preupload(self._repo(m["repo"], write=True), m["rev"], json.loads(body))
        if m := re.fullmatch(rf"/{REPO_ID}\.git/info/lfs/objects/batch", path):
            self._lfs_batch(self._repo(m["repo"], write=True), json.loads(body))
        if method == "PUT" and (m := re.fullmatch(rf"/_lfs/{REPO_ID}/(?P<oid>[0-9a-f]{{64}})", path)):
            repo = self.server.state.repos.get(m["repo"])  # like S3: the signed URL is the credential
            if repo is None:
                raise _Reply(404, {"error": "no such upload"})
            if hashlib.sha256(body).hexdigest() != m["oid"]:
                raise _Reply(400, {"error": "sha256 mismatch"})
            repo.lfs_objects[m["oid"]] = body
            raise _Reply(200, {}, {"ETag": m["oid"]})
        if method == "POST" and (m := re.fullmatch(rf"/_lfs/{REPO_ID}/verify", path)):
            repo = self._repo(m["repo"], write=True)
            info = json.loads(body)
            stored = repo.lfs_objects.get(info["oid"])
            if stored is None or len(stored) != info["size"]:
                raise _Reply(404, {"error": "object not found"})
            raise _Reply(200, {})
        if method == "POST" and (m := re.fullmatch(rf"/api/models/{REPO_ID}/commit/(?P<rev>[^/]+)", path)):
            self._commit_files(self._repo(m["repo"], write=True), unquote(m["rev"]), body)
        if method == "POST" and (m := re.fullmatch(rf"/api/models/{REPO_ID}/branch/(?P<branch>[^/]+)", path)):
            repo = self._repo(m["repo"], write=True)
            branch = unquote(m["branch"])
            if branch in repo.branches:
                raise _Reply(409, {"error": f"Reference refs/heads/{branch} already exists"})
            start = (json.loads(body) if body else {}).get("startingPoint") or "main"
            repo.branches[branch] = self._commit(repo, start).oid
            raise _Reply(200, {})
        if method == "GET" and (m := re.fullmatch(rf"/api/models/{REPO_ID}(?:/revision/(?P<rev>[^/]+))?", path)):
            repo = self._repo(m["repo"], write=False)
            commit = self._commit(repo, m["rev"] or "main")
            blobs = query.get("blobs", ["false"])[0].lower() == "true"
            raise _Reply(
                200,
                {
                    "id": repo.repo_id,
                    "modelId": repo.repo_id,
                    "sha": commit.oid,
                    "private": repo.private,
                    "gated": repo.gated,
                    "siblings": [_sibling(p, f, blobs) for p, f in sorted(commit.files.items())],
                },
            )
        if method == "GET" and (m := re.fullmatch(rf"/api/models/{REPO_ID}/refs", path)):
            repo = self._repo(m["repo"], write=False)
            refs = lambda kind, names: [  # noqa: E731
                {"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": oid} for n, oid in sorted(names.items())
            ]
            body = {"branches": refs("heads", repo.branches), "tags": refs("tags", repo.tags), "converts": []}
            raise _Reply(200, body)
        if method == "GET" and (m := re.fullmatch(rf"/api/models/{REPO_ID}/commits/(?P<rev>[^/]+)", path)):
            repo = self._repo(m["repo"], write=False)
            oid: str | None = self._commit(repo, m["rev"]).oid
            history = []
            while oid is not None:
                commit = repo.commits[oid]
                history.append(
                    {"id": commit.oid, "title": commit.message, "message": commit.message,
                     "authors": [{"user": "tester"}], "date": "2026-01-01T00:00:00.000Z"}
                )
                oid = commit.parent
            raise _Reply(200, history)
        if method == "GET" and (m := re.fullmatch(rf"/api/models/{REPO_ID}/auth-check", path)):
            self._check_access(self._repo(m["repo"], write=False))
            raise _Reply(200, {})
        if method == "GET" and (m := re.fullmatch(rf"/api/models/{REPO_ID}/tree/(?P<rev>[^/]+)(?P<sub>/.*)?", path)):
            repo = self._repo(m["repo"], write=False)
            commit = self._commit(repo, m["rev"])
            prefix = unquote(m["sub"] or "").strip("/")
            recursive = query.get("recursive", ["false"])[0].lower() == "true"
            raise _Reply(200, _tree(commit, prefix, recursive))
        if method in ("GET", "HEAD") and (m := re.fullmatch(rf"/{REPO_ID}/resolve/(?P<rev>[^/]+)/(?P<file>.+)", path)):
            repo = self._repo(m["repo"], write=False)
            self._check_access(repo)
            commit = self._commit(repo, m["rev"])
            stored = commit.files.get(unquote(m["file"]))
            headers = {"X-Repo-Commit": commit.oid}
            if stored is None:
                raise _Reply(404, {"error": "Entry not found"}, {**headers, "X-Error-Code": "EntryNotFound"})
            headers["ETag"] = f'"{stored.etag}"'
            if stored.lfs:
                headers["X-Linked-Etag"] = f'"{stored.sha256}"'
                headers["X-Linked-Size"] = str(len(stored.content))
            raise _Reply(200, stored.content, headers)

    def _create_repo(self, payload: dict) -> None:
        self._auth(required=True)
        if payload.get("type", "model") != "model":
            raise _Reply(400, {"error": "only model repositories are served here"})
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        if "/" not in repo_id:
            repo_id = f"tester/{repo_id}"
        state = self.server.state
        if repo_id in state.repos:
            raise _Reply(409, {"error": "You already created this model repo", "url": f"{self._base()}/{repo_id}"})
        repo = Repo(repo_id, private=payload.get("visibility") == "private" or bool(payload.get("private")))
        initial = state.new_commit(repo, None, "initial commit", {".gitattributes": StoredFile(b"", lfs=False)})
        repo.branches["main"] = initial.oid
        state.repos[repo_id] = repo
        raise _Reply(200, {"url": f"{self._base()}/{repo_id}", "name": repo_id, "id": repo_id})

    def _validate_yaml(self, payload: dict) -> None:
        content = payload.get("content", "")
        match = re.match(r"^---\n(.*?)\n---\n", content, re.S)
        if match is None:
            raise _Reply(200, {"errors": [], "warnings": [{"message": "empty or missing yaml metadata"}]})
        try:
            meta = yaml.safe_load(match.group(1)) or {}
        except yaml.YAMLError as err:
            raise _Reply(400, {"errors": [{"message": f"invalid yaml: {err}"}]}) from None
        errors = []
        licence = meta.get("license")
        if licence is not None and licence not in KNOWN_LICENSES:
            errors.append({"message": f'"license" must be one of the Hub licence ids, got "{licence}"'})
        if licence == "other" and not (meta.get("license_name") and meta.get("license_link")):
            errors.append({"message": '"license: other" needs "license_name" and "license_link"'})
        if errors:
            raise _Reply(400, {"errors": errors})
        raise _Reply(200, {"errors": [], "warnings": []})

    def _preupload(self, repo: Repo, revision: str, payload: dict) -> None:
        commit = repo.resolve(unquote(revision))
        files = []
        for item in payload["files"]:
            lfs = item["path"].endswith(LFS_SUFFIXES) or item["size"] >= LFS_MIN_SIZE
            existing = commit.files.get(item["path"]) if commit is not None else None
            oid = None
            if existing is not None and existing.lfs == lfs:
                oid = existing.sha256 if lfs else git_blob_sha1(existing.content)
            files.append(
                {"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}
            )
        raise _Reply(200, {"files": files})

    def _lfs_batch(self, repo: Repo, payload: dict) -> None:
        if payload.get("operation") != "upload":
            raise _Reply(400, {"message": "only uploads are served"})
        objects = []
        for obj in payload["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in repo.lfs_objects:
                entry["actions"] = {
                    "upload": {"href": f"{self._base()}/_lfs/{repo.repo_id}/{obj['oid']}"},
                    "verify": {"href": f"{self._base()}/_lfs/{repo.repo_id}/verify"},
                }
            objects.append(entry)
        raise _Reply(200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"})

    def _commit_files(self, repo: Repo, revision: str, body: bytes) -> None:
        parent = self._commit(repo, revision)
        if revision not in repo.branches:
            raise _Reply(400, {"error": f"{revision} is not a branch"})
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise _Reply(400, {"error": "the first NDJSON line must be the header"})
        header = lines[0]["value"]
        if header.get("parentCommit") and header["parentCommit"] != parent.oid:
            raise _Reply(412, {"error": "parent commit is not the head of the branch"})
        files = dict(parent.files)
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key == "file":
                files[value["path"]] = StoredFile(base64.b64decode(value["content"]), lfs=False)
            elif key == "lfsFile":
                content = repo.lfs_objects.get(value["oid"])
                if content is None:
                    raise _Reply(400, {"error": f"LFS object {value['oid']} was never uploaded"})
                files[value["path"]] = StoredFile(content, lfs=True)
            elif key == "deletedFile":
                if value["path"] not in files:
                    raise _Reply(
                        404, {"error": "A file with this name doesn't exist"}, {"X-Error-Code": "EntryNotFound"}
                    )
                del files[value["path"]]
            elif key == "deletedFolder":
                files = {p: f for p, f in files.items() if not p.startswith(value["path"].rstrip("/") + "/")}
            else:
                raise _Reply(400, {"error": f"unknown operation {key}"})
        if files == parent.files:
            raise _Reply(400, {"error": "No files have been modified since last commit"})
        commit = self.server.state.new_commit(repo, parent.oid, header["summary"], files)
        repo.branches[revision] = commit.oid
        raise _Reply(
            200,
            {
                "commitUrl": f"{self._base()}/{repo.repo_id}/commit/{commit.oid}",
                "commitOid": commit.oid,
                "pullRequestUrl": None,
            },
        )


def _sibling(path: str, stored: StoredFile, blobs: bool) -> dict:
    """A ``siblings`` entry of the model info; with ``?blobs=true`` (``files_metadata=True``) sizes and LFS data."""
    if not blobs:
        return {"rfilename": path}
    item: dict = {"rfilename": path, "blobId": stored.blob_id, "size": len(stored.content)}
    if stored.lfs:
        pointer = len(lfs_pointer(stored.sha256, len(stored.content)))
        item["lfs"] = {"sha256": stored.sha256, "size": len(stored.content), "pointerSize": pointer}
    return item


def _tree(commit: Commit, prefix: str, recursive: bool) -> list[dict]:
    entries: dict[str, dict] = {}
    for path, stored in sorted(commit.files.items()):
        if prefix and not path.startswith(prefix + "/"):
            continue
        rest = path[len(prefix) + 1 :] if prefix else path
        parts = rest.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(([prefix] if prefix else []) + parts[:depth])
            if recursive or depth == 1:
                entries.setdefault(
                    folder,
                    {"type": "directory", "oid": hashlib.sha1(folder.encode()).hexdigest(), "size": 0, "path": folder},
                )
        if not recursive and len(parts) > 1:
            continue
        item = {"type": "file", "oid": stored.blob_id, "size": len(stored.content), "path": path}
        if stored.lfs:
            item["lfs"] = {
                "oid": stored.sha256,
                "size": len(stored.content),
                "pointerSize": len(lfs_pointer(stored.sha256, len(stored.content))),
            }
        entries[path] = item
    return list(entries.values())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: HubState
    base_url: str


class HubServer:
    """``with HubServer(tokens={"hf_x"}) as hub: ...`` serves on ``hub.url`` (127.0.0.1, a free port)."""

    def __init__(self, tokens: set[str] | frozenset[str] = frozenset()) -> None:
        self.state = HubState(set(tokens))
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = self.state
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._server.base_url = self.url
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def drop_next(self, method: str, path_regex: str) -> None:
        """Cut the connection of the next ``method`` request whose path matches, halfway through its body."""
        with self.state.lock:
            self.state.faults.append((method, re.compile(path_regex)))

    def create_repo(
        self,
        repo_id: str,
        files: dict[str, bytes] | None = None,
        private: bool = False,
        gated: str | bool = False,
        granted: set[str] | frozenset[str] = frozenset(),
        oid: str | None = None,
    ) -> str:
        """Seed a repository directly (for 'already exists' tests); returns the commit on ``main`` (``oid``: that
        commit's id, e.g. a revision a spec pins)."""
        with self.state.lock:
            repo = Repo(repo_id, private=private, gated=gated, granted=set(granted))
            stored = {".gitattributes": StoredFile(b"", lfs=False)}
            for path, content in (files or {}).items():
                stored[path] = StoredFile(content, lfs=path.endswith(LFS_SUFFIXES))
                if stored[path].lfs:
                    repo.lfs_objects[stored[path].sha256] = content
            repo.branches["main"] = self.state.new_commit(repo, None, "seed", stored, oid).oid
            self.state.repos[repo_id] = repo
            return repo.branches["main"]

    def add_commit(self, repo_id: str, files: dict[str, bytes], branch: str = "main", message: str = "update") -> str:
        """A new commit on ``branch`` with ``files`` added or replaced; returns its id (the old head stays in the
        branch's history)."""
        with self.state.lock:
            repo = self.state.repos[repo_id]
            parent = repo.commits[repo.branches[branch]]
            stored = dict(parent.files)
            for path, content in files.items():
                stored[path] = StoredFile(content, lfs=path.endswith(LFS_SUFFIXES))
                if stored[path].lfs:
                    repo.lfs_objects[stored[path].sha256] = content
            repo.branches[branch] = self.state.new_commit(repo, parent.oid, message, stored).oid
            return repo.branches[branch]

    def tag(self, repo_id: str, name: str, revision: str) -> None:
        with self.state.lock:
            repo = self.state.repos[repo_id]
            commit = repo.resolve(revision)
            assert commit is not None, revision
            repo.tags[name] = commit.oid
