"""CLI commands of this stage (registered by rewardlab.cli). Import only typer here; heavy imports go inside."""

from __future__ import annotations

import typer

from rewardlab.models.device import ATTN_HELP, CHAT_TEMPLATE_HELP, device_option, dtype_option


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""

    @app.command("serve")
    def serve(
        model: str = typer.Argument(..., metavar="MODEL_DIR_OR_SPEC",
                                    help="A checkpoint directory or a reward spec (DIR, hub id, python:MODULE:FN, "
                                    "ensemble:..., mix:FILE.yaml, ...; the README's reward spec table)."),
        host: str = typer.Option("127.0.0.1", help="Bind address. A non-loopback address needs a token."),
        port: int = typer.Option(5000, help="Port (OpenRLHF's default is 5000)."),
        token_env: str = typer.Option("REWARDLAB_TOKEN", help="Environment variable holding the bearer token."),
        token_file: str = typer.Option(None, help="File holding the bearer token (first line); wins over the env."),
        name: str = typer.Option(None, help="Model name reported by /v1/models and responses (default: dir name)."),
        device: str = device_option(),
        dtype: str = dtype_option(),
        chat_template: str = typer.Option(None, "--chat-template", help=CHAT_TEMPLATE_HELP),
        attn_implementation: str = typer.Option(None, "--attn-implementation", help=ATTN_HELP),
        max_batch_tokens: int = typer.Option(16384, help="Token budget of one dynamic batch."),
        max_batch_items: int = typer.Option(256, help="Items per dynamic batch at most."),
        max_wait_ms: float = typer.Option(5.0, help="How long a batch waits for more requests once it has one."),
        max_queue_tokens: int = typer.Option(None, help="Tokens queued for the model before new requests get 503 "
                                                        "with Retry-After (default: 16 x --max-batch-tokens)."),
        max_body_mb: float = typer.Option(8.0, help="Largest request body accepted (413 above)."),
        max_items: int = typer.Option(1024, help="Most items in one request (413 above)."),
        max_item_tokens: int = typer.Option(16384, help="Most tokens in one item before truncation (422 above)."),
        max_item_bytes: int = typer.Option(None, help="Most UTF-8 bytes in one item, checked before tokenizing "
                                                      "(422 above; default: 16 x --max-item-tokens)."),
        prep_workers: int = typer.Option(1, help="Threads tokenizing small requests (large ones get their own)."),
        limit_concurrency: int = typer.Option(1024, help="Open connections before new requests get 503."),
        timeout_keep_alive: float = typer.Option(5.0, help="Seconds an idle keep-alive connection stays open."),
        header_timeout: float = typer.Option(10.0, help="Seconds a client has to send a request's headers."),
        body_timeout: float = typer.Option(60.0, help="Seconds a client has to send a request's body (408 after)."),
        max_header_kb: float = typer.Option(16.0, help="Most kB of an unfinished request head buffered (400 above)."),
        normalize: bool = typer.Option(False, help="Standardize /get_reward and /classify outputs with the "
                                                   "manifest's normalization stats (`rewardlab calibrate`)."),
        reference: str = typer.Option(None, "--reference", help="Ensemble specs: standardize every member on this "
                                      "data file's responses (default: each member's manifest normalization)."),
        log_level: str = typer.Option("info", help="uvicorn log level."),
        engine: str = typer.Option("local", help="local: one uvicorn process; ray: Ray Serve replicas, each "
                                   "loading the model once ($RAY_ADDRESS or a local cluster; serve/ray_serve.py)."),
        replicas: int = typer.Option(1, help="--engine ray: replicas of the model."),
        num_gpus_per_replica: float = typer.Option(0.0, help="--engine ray: GPUs per replica (fractions share one)."),
    ) -> None:
        """Serve a reward model over HTTP: OpenRLHF /get_reward, vLLM /classify, native /v1/score and more."""
        from rewardlab.serve.app import ServeConfig
        from rewardlab.serve.run import run_server
        from rewardlab.serve.security import check_bind, read_token

        token = read_token(token_env, token_file)
        check_bind(host, token)  # before loading a model: fail fast
        config = ServeConfig(  # checks every limit before loading a model
            token=token, max_body_bytes=int(max_body_mb * 1024 * 1024), max_items=max_items,
            max_item_tokens=max_item_tokens, max_item_bytes=max_item_bytes, max_batch_tokens=max_batch_tokens,
            max_batch_items=max_batch_items, max_wait_ms=max_wait_ms, max_queue_tokens=max_queue_tokens,
            prep_workers=prep_workers, normalize=normalize, limit_concurrency=limit_concurrency,
            timeout_keep_alive_s=timeout_keep_alive, header_timeout_s=header_timeout, body_timeout_s=body_timeout,
            max_header_bytes=int(max_header_kb * 1024))
        run_server(model, config, host=host, port=port, name=name, device=device, dtype=dtype,
                   chat_template=chat_template, attn_implementation=attn_implementation, normalize=normalize,
                   reference=reference, log_level=log_level, engine=engine, replicas=replicas,
                   num_gpus_per_replica=num_gpus_per_replica, log=lambda line: typer.echo(line, err=True))
