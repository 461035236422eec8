"""A test double of the Hugging Face Hub API: a real HTTP server on 127.0.0.1 that speaks the
subset huggingface_hub's upload path uses (with HF_HUB_DISABLE_XET=1), and keeps what it receives.

    whoami           GET  /api/whoami-v2
    repo creation    POST /api/repos/create
    YAML validation  POST /api/validate-yaml
    preupload        POST /api/{kind}/{repo}/preupload/{revision}
    LFS batch        POST /{repo}.git/info/lfs/objects/batch  (/spaces/{repo}.git/..., /datasets/{repo}.git/...)
    LFS upload       PUT  /lfs-upload/{oid}        (the href the batch answer points to)
    commit           POST /api/{kind}/{repo}/commit/{revision}   (added and deleted files)
    file list        GET  /api/{kind}/{repo}/tree/{revision}[/{folder}]  (delete_patterns, HfFileSystem;
                     at a branch, tag or commit; git's blob ids, and the sha256 of LFS files)
    tag              POST /api/models/{repo}/tag/{revision}
    tag deletion     DELETE /api/models/{repo}/tag/{tag}
    refs             GET  /api/models/{repo}/refs
    repo info        GET  /api/{kind}/{repo}[/revision/{revision}]  (its files and commit at that revision)
    file download    HEAD, GET /[spaces/|datasets/]{repo}/resolve/{revision}/{path}  (`hf download`, HfFileSystem;
                     the file at that branch, tag or commit; a Range header gets that part of the file)

{kind} is models, spaces or datasets: hub.repos holds the models, hub.spaces and
hub.datasets the others. Every request must carry the expected bearer token.
`fail_commits` makes the commit endpoint answer 500, like a Hub having a bad day (True: every
commit; a set of kinds such as {"models"}: the commits to those repos only);
`yaml_errors` makes the YAML validation reject a card, as the Hub does bad metadata.
`fail_lfs` makes the large-file upload answer 500 (the longest part of a push, the weights).
Repos are created under the token's user only: another namespace is refused with 403, as the Hub
refuses an organization the user may not write to. `publish` puts a repo's files there as one commit
would (a dataset for `datasets.load_dataset(..., streaming=True)` to read, say).
"""

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

LFS_SUFFIXES = (".safetensors", ".model", ".png", ".bin", ".parquet")


def git_blob_id(content):
    """The id git gives a file's content, as the Hub's listings show it."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(content):
    return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(content).hexdigest()}\n"
            f"size {len(content)}\n").encode()


def files_at(repo, revision):
    """The files of a repo at a branch, tag or commit (None: no such revision)."""
    if revision == "main":
        return repo["files"]
    commit = repo["tags"].get(revision, revision)
    return repo.get("snapshots", {}).get(commit)


def commit_of(repo, revision):
    """The commit a branch, tag or commit names."""
    return repo["commits"][-1] if revision == "main" else repo["tags"].get(revision, revision)


def datasets_cache_in(home, monkeypatch):
    """Point this process's datasets cache (and its downloads) into `home`, as HF_HOME=home points a new
    process's (datasets reads it at import). Undone with `monkeypatch`."""
    import datasets.config
    cache = home / "datasets"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "DOWNLOADED_DATASETS_PATH", cache / "downloads")
    monkeypatch.setattr(datasets.config, "EXTRACTED_DATASETS_PATH", cache / "downloads" / "extracted")


def seen_from_this_process(url, monkeypatch, home, token=None):
    """Make huggingface_hub and datasets in this process read the Hub at `url`, as HF_ENDPOINT=url, HF_HOME=home,
    HF_TOKEN=token (unset: None), HF_HUB_DISABLE_XET=1 and HF_HUB_DISABLE_TELEMETRY=1 make a new process
    read it: both libraries read these at import. Undone with `monkeypatch`."""
    import os

    import datasets.config
    import huggingface_hub.constants as constants
    for name in [name for name in os.environ if name.startswith("HF_")]:
        monkeypatch.delenv(name)
    if token:
        monkeypatch.setenv("HF_TOKEN", token)
    for module, name, value in [
            (constants, "ENDPOINT", url),
            (constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}"),
            (constants, "HF_HUB_DISABLE_XET", True),  # the double speaks no Xet
            (constants, "HF_HUB_DISABLE_TELEMETRY", True),
            (constants, "HF_HUB_CACHE", str(home / "hub")),
            (constants, "HF_TOKEN_PATH", str(home / "token")),  # no stored login
            (constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens")),
            (datasets.config, "HF_ENDPOINT", url),
            (datasets.config, "HUB_DATASETS_URL", url + "/datasets/{repo_id}/resolve/{revision}/{path}")]:
        monkeypatch.setattr(module, name, value)
    datasets_cache_in(home, monkeypatch)


class HubDouble:
    def __init__(self, token, user="tester"):
        self.token = token
        self.user = user
        self.repos = {}  # repo_id -> {"private": bool, "files": {path: bytes}, "commits": [...], "tags": {}}
        self.spaces = {}  # the same, with the "sdk" and "hardware" the Space was created with
        self.datasets = {}
        self.lfs = {}  # oid -> bytes
        self.requests = []  # (method, path, body bytes)
        self.fail_commits = False
        self.fail_lfs = False
        self.yaml_errors = []  # messages the YAML validation answers with HTTP 400, as the Hub rejects a card
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), HubHandler)
        self.server.hub = self
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def store(self, kind):
        return {"models": self.repos, "spaces": self.spaces, "datasets": self.datasets}[kind]

    def publish(self, kind, repo_id, files, private=False):
        """Make `files` ({path: bytes}) the repo's content in a new commit, creating the repo if need be;
        return the commit id."""
        repo = self.store(kind).setdefault(repo_id, {"private": private, "files": {}, "commits": [], "tags": {}})
        repo["files"] = dict(files)
        commit = hashlib.sha1(json.dumps(sorted(files)).encode() + str(len(repo["commits"])).encode()
                              + b"".join(files[path] for path in sorted(files))).hexdigest()
        repo["commits"].append(commit)
        repo.setdefault("snapshots", {})[commit] = dict(files)
        return commit


class HubHandler(BaseHTTPRequestHandler):
    """One request to the double: the routes of the module's docstring, answered from and into `self.hub`."""

    @property
    def hub(self):
        return self.server.hub

    def log_message(self, *args):
        pass

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status, payload=None, content_type="application/json", error_code=None):
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        error = payload.get("error") if isinstance(payload, dict) else None
        if status >= 400:
            self.send_header("X-Error-Message", error or "error")
        if error == "Repository not found" or error_code:
            self.send_header("X-Error-Code", error_code or "RepoNotFound")  # as the Hub marks it
        self.end_headers()
        self.wfile.write(data)

    def _send_empty(self, status, headers):
        """A bodyless answer, as the Hub gives to a HEAD or a missing file: the status and its headers."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _authorized(self):
        if self.headers.get("Authorization") != f"Bearer {self.hub.token}":
            self._send(401, {"error": "Invalid credentials in Authorization header"})
            return False
        return True

    def do_HEAD(self):
        self.hub.requests.append(("HEAD", self.path, b""))
        if self._authorized():
            self._resolve(head=True)

    def _resolve(self, head):
        """A repo's file as the Hub serves it: the commit, ETag and size in the headers."""
        match = re.match(r"^/(spaces/|datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/([^?]+)", self.path)
        kind = (match.group(1) or "models/").rstrip("/") if match else "models"
        repo = self.hub.store(kind).get(match.group(2)) if match else None
        files = files_at(repo, unquote(match.group(3))) if repo else None
        if repo and files is None:
            return self._send_empty(404, {"X-Error-Code": "RevisionNotFound"})
        content = files.get(unquote(match.group(4))) if repo else None
        if content is None:
            return self._send_empty(404, {"X-Error-Code": "EntryNotFound" if repo else "RepoNotFound"})
        wanted = re.fullmatch(r"bytes=(\d+-\d*|-\d+)", self.headers.get("Range") or "")
        etag = hashlib.sha1(content).hexdigest()
        size = len(content)
        if wanted:  # a part of the file, as streaming readers ask for (a Parquet footer first)
            first, last = wanted.group(1).split("-")
            start = max(size - int(last), 0) if not first else int(first)
            end = min(int(last), size - 1) if first and last else size - 1
            if start >= size:  # past the end: the Hub answers 416, which readers take for the end
                return self._send_empty(416, {"Content-Range": f"bytes */{size}"})
            content = content[start:end + 1]
        self.send_response(206 if wanted else 200)
        self.send_header("X-Repo-Commit", commit_of(repo, unquote(match.group(3))))
        self.send_header("ETag", f'"{etag}"')
        self.send_header("Content-Length", str(len(content)))
        if wanted:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if not head:
            self.wfile.write(content)

    def do_GET(self):
        self.hub.requests.append(("GET", self.path, b""))
        if not self._authorized():
            return
        if "/resolve/" in self.path and not self.path.startswith("/api/"):
            return self._resolve(head=False)
        if self.path.startswith("/api/whoami-v2"):
            return self._send(200, {"name": self.hub.user, "type": "user", "auth": {"type": "access_token"}})
        match = re.match(r"^/api/models/([^/]+/[^/?]+)/refs", self.path)
        if match and match.group(1) in self.hub.repos:
            repo = self.hub.repos[match.group(1)]
            tags = [{"name": name, "ref": f"refs/tags/{name}", "targetCommit": commit}
                    for name, commit in repo["tags"].items()]
            main = [{"name": "main", "ref": "refs/heads/main", "targetCommit": repo["commits"][-1]}
                    ] if repo["commits"] else []
            return self._send(200, {"branches": main, "converts": [], "tags": tags})
        match = re.match(r"^/api/(models|spaces|datasets)/([^/]+/[^/?]+)/tree/([^/?]+)/?([^?]*)", self.path)
        if match and match.group(2) in self.hub.store(match.group(1)):
            files = files_at(self.hub.store(match.group(1))[match.group(2)], unquote(match.group(3)))
            if files is None:
                return self._send_empty(404, {"X-Error-Code": "RevisionNotFound"})
            return self._tree(files, unquote(match.group(4)), "recursive=true" in self.path.lower())
        match = re.match(r"^/api/(models|spaces|datasets)/([^/]+/[^/?]+)(?:/revision/([^/?]+))?", self.path)
        if match and match.group(2) in self.hub.store(match.group(1)):
            repo = self.hub.store(match.group(1))[match.group(2)]
            if repo.get("gated"):  # terms this token's user has not accepted, as the Hub answers then
                return self._send(403, {"error": f"Access to {match.group(2)} is restricted."}, error_code="GatedRepo")
            revision = unquote(match.group(3) or "main")
            files = files_at(repo, revision)
            if files is None:
                return self._send(404, {"error": f"Invalid rev id: {revision}"}, error_code="RevisionNotFound")
            sha = commit_of(repo, revision) if repo["commits"] else "0" * 40
            return self._send(200, {"id": match.group(2), "sha": sha, "private": repo["private"],
                                    "siblings": [{"rfilename": p} for p in files]})
        self._send(404, {"error": "Repository not found"})

    def _tree(self, files, folder, recursive):
        """The entries under `folder` as the Hub lists them: its files and subfolders, and with
        recursive everything below them too; an absent folder is EntryNotFound."""
        prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
        entries = {}
        for path, content in sorted(files.items()):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix):].split("/")
            for depth in range(1, len(parts) if recursive else min(len(parts), 2)):
                folder_path = prefix + "/".join(parts[:depth])
                entries.setdefault(folder_path, {"type": "directory", "path": folder_path,
                                                 "oid": hashlib.sha1(folder_path.encode()).hexdigest()})
            if recursive or len(parts) == 1:
                entries[path] = {"type": "file", "path": path, "size": len(content), "oid": git_blob_id(content)}
                if path.endswith(LFS_SUFFIXES):  # git holds a pointer; the Hub names the content by its sha256
                    pointer = lfs_pointer(content)
                    entries[path].update(oid=git_blob_id(pointer), lfs={
                        "oid": hashlib.sha256(content).hexdigest(), "size": len(content),
                        "pointerSize": len(pointer)})
        if prefix and not entries:
            return self._send_empty(404, {"X-Error-Code": "EntryNotFound"})
        self._send(200, list(entries.values()))

    def do_DELETE(self):
        self.hub.requests.append(("DELETE", self.path, b""))
        if not self._authorized():
            return
        match = re.match(r"^/api/models/([^/]+/[^/]+)/tag/([^/?]+)$", self.path)
        if match and match.group(2) in self.hub.repos.get(match.group(1), {}).get("tags", {}):
            del self.hub.repos[match.group(1)]["tags"][match.group(2)]
            return self._send(200, {})
        self._send(404, {"error": "Tag not found"})

    def do_PUT(self):
        body = self._body()
        self.hub.requests.append(("PUT", self.path, body))
        match = re.match(r"^/lfs-upload/([0-9a-f]{64})$", self.path)
        if match and self.hub.fail_lfs:
            return self._send(500, {"error": "Internal Error - We're working hard to fix this"})
        if not match:
            return self._send(404, {"error": "not found"})
        if hashlib.sha256(body).hexdigest() != match.group(1):
            return self._send(400, {"error": "sha256 mismatch"})
        self.hub.lfs[match.group(1)] = body
        self._send(200, {})

    def do_POST(self):
        body = self._body()
        self.hub.requests.append(("POST", self.path, body))
        if not self._authorized():
            return
        path = self.path.split("?")[0]
        if path == "/api/repos/create":
            request = json.loads(body)
            repo_id = f"{request.get('organization') or self.hub.user}/{request['name']}"
            kind = {"space": "spaces", "dataset": "datasets"}.get(request.get("type"), "models")
            if request.get("organization") not in (None, self.hub.user):
                return self._send(403, {"error": "You don't have the rights to create a model under the "
                                                 f"namespace \"{request['organization']}\""})
            if repo_id in self.hub.store(kind):
                return self._send(409, {"error": f"You already created this {kind[:-1]} repo",
                                        "url": f"{self.hub.url}/{repo_id}"})
            self.hub.store(kind)[repo_id] = {"private": request.get("visibility") == "private", "files": {},
                                        "commits": [], "tags": {}, "sdk": request.get("sdk"),
                                        "hardware": request.get("hardware")}
            return self._send(200, {"url": f"{self.hub.url}/{repo_id}", "name": repo_id})
        if path == "/api/validate-yaml":
            if self.hub.yaml_errors:
                return self._send(400, {"error": "Invalid metadata",
                                        "errors": [{"message": m} for m in self.hub.yaml_errors]})
            return self._send(200, {"errors": [], "warnings": []})
        match = re.match(r"^/api/(models|spaces|datasets)/([^/]+/[^/]+)/(preupload|commit|tag)/([^/]+)$",
                         path)
        if match:
            kind, repo_id, action, revision = match.groups()
            if repo_id not in self.hub.store(kind):
                return self._send(404, {"error": "Repository not found"})
            if action == "commit" and (self.hub.fail_commits is True or kind in (self.hub.fail_commits or ())):
                return self._send(500, {"error": "Internal Error - We're working hard to fix this"})
            return getattr(self, f"_{action}")(self.hub.store(kind)[repo_id], repo_id, json_or_ndjson(body),
                                               unquote(revision))
        match = re.match(r"^/(?:spaces/|datasets/)?([^/]+/[^/]+)\.git/info/lfs/objects/batch$", path)
        if match:
            return self._lfs_batch(json.loads(body))
        self._send(404, {"error": f"no route for {path}"})

    def _preupload(self, repo, repo_id, request, revision):
        files = [{"path": f["path"], "shouldIgnore": False,
                  "uploadMode": "lfs" if f["path"].endswith(LFS_SUFFIXES) else "regular",
                  "oid": None} for f in request["files"]]
        self._send(200, {"files": files})

    def _lfs_batch(self, request):
        objects = []
        for item in request["objects"]:
            entry = {"oid": item["oid"], "size": item["size"]}
            if item["oid"] not in self.hub.lfs:
                entry["actions"] = {"upload": {"href": f"{self.hub.url}/lfs-upload/{item['oid']}"}}
            objects.append(entry)
        self.send_response(200)
        data = json.dumps({"transfer": "basic", "objects": objects}).encode()
        self.send_header("Content-Type", "application/vnd.git-lfs+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _commit(self, repo, repo_id, lines, revision):
        files, deleted = {}, []
        for line in lines[1:]:
            value = line["value"]
            if line["key"] == "deletedFile":
                deleted.append(value["path"])
            elif line["key"] == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif line["key"] == "lfsFile":
                if value["oid"] not in self.hub.lfs:
                    return self._send(422, {"error": f"LFS object {value['oid']} was never uploaded"})
                files[value["path"]] = self.hub.lfs[value["oid"]]
        for path in deleted:
            repo["files"].pop(path, None)
        repo["files"].update(files)
        oid = hashlib.sha1(json.dumps(sorted(repo["files"])).encode() + str(len(repo["commits"])).encode())
        repo["commits"].append(oid.hexdigest())
        repo.setdefault("snapshots", {})[oid.hexdigest()] = dict(repo["files"])
        repo.setdefault("messages", []).append(lines[0]["value"]["summary"])
        self._send(200, {"commitUrl": f"{self.hub.url}/{repo_id}/commit/{oid.hexdigest()}",
                         "commitOid": oid.hexdigest(), "success": True})

    def _tag(self, repo, repo_id, request, revision):
        if request["tag"] in repo["tags"]:
            return self._send(409, {"error": "Tag already exists"})
        commit = repo["commits"][-1] if revision == "main" else revision
        if commit not in repo.get("snapshots", {}):
            return self._send(404, {"error": f"Invalid rev id: {revision}"})
        repo["tags"][request["tag"]] = commit
        self._send(200, {})


def json_or_ndjson(body):
    text = body.decode() if body else "{}"
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
