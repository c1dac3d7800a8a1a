"""RL from a person's likes (``reward: likes``): a web page shows each rollout group, a like is reward 1 and a
dislike 0; labels are stored in SQLite at once and can replay a run without the person (docs/DESIGN_NOTES.md)."""

import hmac
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tdmr1.errors import RewardError
from tdmr1.reward_protocol import RewardOutput, validate_images
from tdmr1.rewards.protocol import image_hash, png_bytes
from tdmr1.rewards.server import is_loopback, resolve_token, token_ok

DEFAULT_PORT = 8766
DB_NAME = "likes.sqlite"
PAGE_TOKEN_HEADER = "X-Tdmr1-Page"
MAX_LABEL_BYTES = 4096


class LikesStore:
    """The labels: SQLite table ``labels(run, iteration, prompt, image_hash, label, time)``, one row per image."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS labels (run TEXT NOT NULL, iteration INTEGER NOT NULL, "
                "prompt TEXT NOT NULL, image_hash TEXT NOT NULL, label INTEGER NOT NULL, time REAL NOT NULL, "
                "PRIMARY KEY (run, prompt, image_hash))"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def put(self, run: str, iteration: int, prompt: str, digest: str, label: int) -> None:
        """Store (or change) one label now."""
        with self._lock, self._connect() as db:
            db.execute(
                "INSERT INTO labels VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run, prompt, image_hash) "
                "DO UPDATE SET label = excluded.label, iteration = excluded.iteration, time = excluded.time",
                (run, int(iteration), prompt, digest, int(label), time.time()),
            )

    def lookup(self, prompt: str, digest: str, run: str | None = None) -> int | None:
        """The latest label of this image for this prompt (in ``run``, or in any run when None)."""
        sql = "SELECT label FROM labels WHERE prompt = ? AND image_hash = ?"
        args: list[Any] = [prompt, digest]
        if run is not None:
            sql += " AND run = ?"
            args.append(run)
        with self._lock, self._connect() as db:
            row = db.execute(sql + " ORDER BY time DESC LIMIT 1", args).fetchone()
        return None if row is None else int(row[0])

    def rows(self, run: str | None = None) -> list[tuple[str, int, str, str, int, float]]:
        sql, args = "SELECT run, iteration, prompt, image_hash, label, time FROM labels", []
        if run is not None:
            sql, args = sql + " WHERE run = ?", [run]
        with self._lock, self._connect() as db:
            return list(db.execute(sql + " ORDER BY time", args))

    def like_rate_curve(self, run: str) -> list[tuple[int, float, int]]:
        """(iteration, like rate, labels) per iteration of ``run``."""
        with self._lock, self._connect() as db:
            rows = db.execute(
                "SELECT iteration, AVG(label), COUNT(*) FROM labels WHERE run = ? "
                "GROUP BY iteration ORDER BY iteration",
                (run,),
            )
            return [(int(i), float(r), int(n)) for i, r, n in rows]

    def count(self, run: str | None = None) -> int:
        return len(self.rows(run))


@dataclass
class _Item:
    digest: str
    prompt: str
    label: int | None = None


@dataclass
class LikesSession:
    """What the page shows and the trainer waits on; every method is thread-safe."""

    store: LikesStore
    run: str
    samples_dir: Path | None = None
    iteration: int = -1
    items: list[_Item] = field(default_factory=list)
    pngs: dict[str, bytes] = field(default_factory=dict)
    waiting: bool = False
    cond: threading.Condition = field(default_factory=threading.Condition)

    def publish(self, iteration: int, items: list[_Item], pngs: dict[str, bytes]) -> None:
        with self.cond:
            self.iteration, self.items, self.pngs, self.waiting = iteration, items, pngs, True
            self.cond.notify_all()

    def label(self, digest: str, prompt: str, label: int) -> int:
        """Store a label for an image of the current batch; returns how many are still needed."""
        with self.cond:
            matches = [it for it in self.items if it.digest == digest and it.prompt == prompt]
            if not matches or not self.waiting:  # a consumed batch: the trainer has used its labels
                raise KeyError(digest)
            self.store.put(self.run, self.iteration, prompt, digest, label)
            for it in matches:
                it.label = int(label)
            self.cond.notify_all()
            return self.needed()

    def needed(self) -> int:
        return sum(it.label is None for it in self.items) if self.waiting else 0

    def wait_all(self, poll_s: float = 0.5, stop: threading.Event | None = None) -> list[int]:
        """Block until every image of the current batch has a label; the labels in batch order."""
        with self.cond:
            while self.needed():
                if stop is not None and stop.is_set():
                    raise RewardError("likes: stopped while waiting for labels")
                self.cond.wait(poll_s)
            self.waiting = False
            self.cond.notify_all()
            return [int(it.label) for it in self.items]  # type: ignore[arg-type]

    def state(self) -> dict[str, Any]:
        with self.cond:
            groups: list[dict[str, Any]] = []
            for it in self.items:
                if not groups or groups[-1]["prompt"] != it.prompt:
                    groups.append({"prompt": it.prompt, "images": []})
                groups[-1]["images"].append({"hash": it.digest, "label": it.label})
            labelled = sum(it.label is not None for it in self.items)
            samples = []
            if self.samples_dir is not None and self.samples_dir.is_dir():
                samples = sorted(p.name for p in self.samples_dir.glob("*.png"))
            return {
                "run": self.run,
                "iteration": self.iteration,
                "waiting": self.waiting,
                "needed": self.needed(),
                "labelled": labelled,
                "batch": len(self.items),
                "groups": groups if self.waiting else [],
                "total_labels": self.store.count(self.run),
                "curve": [{"iteration": i, "like_rate": r, "n": n} for i, r, n in self.store.like_rate_curve(self.run)],
                "samples": samples,
            }


_SAMPLE_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.png$")


def create_likes_app(session: LikesSession, token: str | None = None, allowed_hosts: tuple[str, ...] = ()):
    """The likes page (``/``) and its endpoints: ``GET /api/state``, ``GET /api/image/{hash}``,
    ``POST /api/label`` (``{"hash", "prompt", "label": 0 | 1}``), ``GET /api/sample/{name}``, ``GET /health``.

    No other web page can drive it: a foreign ``Host`` (DNS rebinding) or a cross-site request is refused
    (403, ``web_guard``); the state and the labels need the per-run page token (``app.state.page_token``,
    in the page, sent by its script as ``X-Tdmr1-Page``) even on loopback; labels must be JSON; the page
    cannot be framed. ``token`` (the access token, beyond loopback) is required on top for everything."""
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    from tdmr1.rewards.likes_page import PAGE, PAGE_TOKEN_SLOT
    from tdmr1.rewards.web_guard import install_guard, is_json_content_type, parse_json

    page_token = secrets.token_urlsafe(18)
    app = FastAPI(title="tdmr1 likes", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.page_token = page_token
    page_html = PAGE.replace(PAGE_TOKEN_SLOT, page_token)

    def refused(status: int, reason: str) -> JSONResponse:
        return JSONResponse({"error": reason}, status_code=status)

    def page_token_ok(request: Request) -> bool:
        return hmac.compare_digest(request.headers.get(PAGE_TOKEN_HEADER, "").encode(), page_token.encode())

    @app.middleware("http")
    async def _auth(request: Request, call_next):
        if not token_ok(token, request.headers, request.query_params):
            return refused(401, "missing or wrong access token")
        if request.url.path in ("/api/state", "/api/label") and not page_token_ok(request):
            return refused(403, f"missing or wrong page token ({PAGE_TOKEN_HEADER}): use the page")
        return await call_next(request)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return page_html

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "run": session.run}

    @app.get("/api/state")
    def state() -> dict[str, Any]:
        return session.state()

    @app.get("/api/image/{digest}")
    def image(digest: str) -> Response:
        with session.cond:
            data = session.pngs.get(digest)
        if data is None:
            return refused(404, "no such image in the current batch")
        return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/api/sample/{name}")
    def sample(name: str) -> Response:
        path = session.samples_dir / name if session.samples_dir is not None else None
        if path is None or not _SAMPLE_NAME.match(name) or not path.is_file():
            return refused(404, "no such sample grid")
        return Response(path.read_bytes(), media_type="image/png")

    @app.post("/api/label")
    async def label(request: Request) -> Response:
        if not is_json_content_type(request.headers.get("content-type")):
            return refused(415, "labels must be sent as application/json")
        body = await request.body()
        if len(body) > MAX_LABEL_BYTES:
            return refused(413, f"a label is at most {MAX_LABEL_BYTES} bytes")
        try:
            data = parse_json(body)
            digest, prompt, value = data["hash"], data["prompt"], data["label"]
        except Exception:  # noqa: BLE001 - any malformed body
            return refused(400, 'expected {"hash": str, "prompt": str, "label": 0 or 1}')
        if value not in (0, 1) or isinstance(value, bool) or not isinstance(digest, str) or not isinstance(prompt, str):
            return refused(422, "label must be 0 (dislike) or 1 (like)")
        try:
            needed = session.label(digest, prompt, value)
        except KeyError:
            return refused(409, "that image is not in the batch waiting for labels (the trainer has used it)")
        return JSONResponse({"ok": True, "needed": needed})

    install_guard(app, allowed_hosts, navigation_paths=("/",))
    return app


class LikesReward:
    """Reward 1 for a like, 0 for a dislike, from a person in a web page (or from stored labels).

    Args:
        run_dir: the run folder: labels go to ``<run_dir>/likes.sqlite`` and its ``samples/`` grids are
            shown on the page (default: ``likes.sqlite`` in the current folder).
        host, port: where the page listens (127.0.0.1 by default; another host needs a token).
        token: access token (a random one when ``host`` is not loopback and none is given).
        replay: answer from stored labels only (any run of the database), never start the page.
        db: the SQLite file (overrides ``run_dir``), e.g. another run's labels to replay.
        run: the run name stored with each label (default: the run folder's name).
        start: start the web app now (tests pass False and drive ``create_likes_app`` themselves).
        allowed_hosts: host names the page answers to besides IP literals, localhost and this machine's.
    """

    name = "likes"

    def __init__(
        self,
        run_dir: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        token: str | None = None,
        replay: bool = False,
        db: str | Path | None = None,
        run: str | None = None,
        open_browser: bool = False,
        start: bool = True,
        allowed_hosts: tuple[str, ...] | list[str] = (),
    ):
        run_dir = Path(run_dir) if run_dir is not None else None
        self.db_path = Path(db) if db is not None else (run_dir / DB_NAME if run_dir is not None else Path(DB_NAME))
        self.store = LikesStore(self.db_path)
        self.run = run or (run_dir.resolve().name if run_dir is not None else "run")
        self.replay = bool(replay)
        self.interactive = not self.replay  # a person answers: no reward timeout applies
        self.iteration = 0
        self.host, self.port = host, int(port)
        self.token = resolve_token(host, token)
        self.allowed_hosts = (*allowed_hosts, host)
        self.session = LikesSession(self.store, self.run, run_dir / "samples" if run_dir is not None else None)
        self.server = None
        self.url: str | None = None
        if start and not self.replay:
            self.start(open_browser)

    def start(self, open_browser: bool = False) -> str:
        """Start the page on a background thread; returns (and prints) its URL."""
        from tdmr1.rewards.server import ServerThread

        if self.server is None:
            if not is_loopback(self.host) and not self.token:
                raise RewardError("likes: a token is required when the page listens beyond this machine")
            try:
                self.server = ServerThread(
                    create_likes_app(self.session, self.token, self.allowed_hosts), self.host, self.port
                ).start()
            except OSError as exc:
                raise RewardError(f"likes: cannot listen on {self.host}:{self.port} ({exc.strerror or exc})") from None
            self.url = self.server.url + (f"/?token={self.token}" if self.token else "/")
            print(f"likes: label the rollouts at {self.url} (labels in {self.db_path})", flush=True)
            if open_browser:
                import webbrowser

                webbrowser.open(self.url)
        return self.url or ""

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def set_iteration(self, iteration: int) -> None:
        """The trainer's iteration (stored with each label); otherwise the call count is used."""
        self.iteration = int(iteration)

    def __call__(self, images: np.ndarray, prompts: list[str], metadata: list[dict[str, Any]]) -> RewardOutput:
        validate_images(images)
        if len(prompts) != len(images):
            raise RewardError(f"likes: got {len(images)} images and {len(prompts)} prompts")
        digests = [image_hash(img) for img in images]
        # replay reads any run's labels; a live run reuses its own (a resumed run re-rolls the same images)
        known = [
            self.store.lookup(p, d, None if self.replay else self.run) for p, d in zip(prompts, digests, strict=True)
        ]
        missing = [i for i, lab in enumerate(known) if lab is None]
        if missing and self.replay:
            i = missing[0]
            raise RewardError(
                f"likes replay: {len(missing)} of {len(images)} images have no stored label in {self.db_path} "
                f"(iteration {self.iteration}, first: prompt {prompts[i]!r}, image {digests[i][:12]})"
            )
        if missing:
            if self.server is None:
                self.start()
            items = [_Item(d, p, lab) for d, p, lab in zip(digests, prompts, known, strict=True)]
            pngs = {digests[i]: png_bytes(images[i]) for i in range(len(images))}
            self.session.publish(self.iteration, items, pngs)
            labels = self.session.wait_all()
        else:
            labels = [int(lab) for lab in known]  # type: ignore[arg-type]
        self.iteration += 1
        scores = np.asarray(labels, dtype=np.float32)
        return RewardOutput(scores=scores, info={"correct": [bool(x) for x in labels], "hash": digests})
