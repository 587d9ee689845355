"""A small HTTP endpoint over ``serving.recommend``: the same answer as the CLI, as JSON.

    python -m serving.serve [--config local] [--checkpoint DIR] [--host 127.0.0.1] [--port 8000]

    GET /recommend/{user_id}?k=10   -> {"user_id", "items": [{"item_id", "title", "score"}], "source",
                                        "cold_start", "reason", "model_version", "context", "latency_ms"}
    GET /healthz                    -> {"status": "ok", "model_version", "items"}

The model, item space and store are loaded once at start-up (``create_app``). Unknown users get
the cold-start answer (``"cold_start": true``, ``"source": "popular"``), never an error. It binds
to loopback by default: put it behind an authenticating proxy before exposing it.
"""

from __future__ import annotations

import logging

from serving.recommend import Recommender

log = logging.getLogger(__name__)
MAX_K = 100


def create_app(recommender: Recommender):
    """A FastAPI app around one loaded ``Recommender``."""
    from fastapi import FastAPI, HTTPException, Path, Query
    from fastapi.concurrency import run_in_threadpool

    app = FastAPI(title="onerec", description=__doc__, docs_url=None, redoc_url=None)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok", "model_version": recommender.version, "items": len(recommender.index)}

    @app.get("/recommend/{user_id}")
    async def recommend(
        user_id: str = Path(min_length=1, max_length=128, pattern=r"^[\w.:@-]+$"),
        k: int = Query(10, ge=1, le=MAX_K),
    ) -> dict:
        try:
            # torch work off the event loop, so /healthz still answers under load
            answer = await run_in_threadpool(recommender.recommend, user_id, k)
        except Exception as err:  # a failing store or model: a 503 with the reason, not a stack trace
            log.exception("recommend %s failed", user_id)
            raise HTTPException(status_code=503, detail=f"{type(err).__name__}: {err}") from err
        return answer.to_dict()

    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from jobs.cli import base_parser, settings_from_args, setup_logging
    from serving.recommend import load

    parser = base_parser(__doc__)
    parser.add_argument("--checkpoint", help="a checkpoint dir instead of the registry's champion")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    setup_logging()
    recommender = load(settings_from_args(args), args.checkpoint)
    uvicorn.run(create_app(recommender), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
