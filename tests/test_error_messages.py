"""A bad argument's error names who received it: every temperature check says which loss, method or weighting.

Several functions and methods take a ``temperature`` (and some a ``gram_temperature``), so a bare
"temperature must be > 0" does not tell a user which one to fix. The methods and weighting schemes are read
from their registries and the loss functions from the modules of ``mmkd_core.losses`` and
``mmkd_core.weighting``, so a newly added one is checked without editing this file.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil

import pytest
import torch

import mmkd_core.losses
import mmkd_core.weighting
from mmkd_core.losses import check_temperature, distillation_objective, gram_objective, kd_loss, msd_loss, stack_views
from mmkd_core.training.methods import METHODS, make_method
from mmkd_core.weighting import SCHEMES, instance_weights, make_weighting, weight_features

BAD_TEMPERATURES = (-1.0, 0.0)
GOOD_TEMPERATURE = 2.0


def _is_temperature(name: str) -> bool:
    return name == "temperature" or name.endswith("_temperature")


def _registered_temperature_options(registry: dict) -> list[tuple[str, str]]:
    return [(name, field.name) for name, cls in registry.items() for field in dataclasses.fields(cls)
            if _is_temperature(field.name)]


def _loss_functions_with_a_temperature() -> dict[str, tuple]:
    """``{function name: (function, its temperature parameters)}`` over every public function of the two packages."""
    found = {}
    for package in (mmkd_core.losses, mmkd_core.weighting):
        for module_info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{module_info.name}")
            for name, function in inspect.getmembers(module, inspect.isfunction):
                if name.startswith("_") or function.__module__ != module.__name__:
                    continue
                parameters = tuple(p for p in inspect.signature(function).parameters if _is_temperature(p))
                if parameters:
                    found[name] = (function, parameters)
    return found


VIEW_LOGITS = {view: torch.randn(4, 3, generator=torch.Generator().manual_seed(i))
               for i, view in enumerate(("joint", "text", "image"))}
LABELS = torch.tensor([0, 1, 2, 0])

# One valid call per loss function, its temperatures passed as keywords: a function that newly takes a
# temperature fails test_every_loss_function_with_a_temperature_is_called_here until it gets a line here.
LOSS_CALLS = {
    "kd_loss": lambda **t: kd_loss(VIEW_LOGITS["joint"], VIEW_LOGITS["text"], **t),
    "distillation_objective": lambda **t: distillation_objective(VIEW_LOGITS["joint"], VIEW_LOGITS["text"], LABELS,
                                                                 **t),
    "msd_loss": lambda **t: msd_loss(VIEW_LOGITS, VIEW_LOGITS, LABELS, {"text": 1.0, "image": 1.0}, **t),
    "stack_views": lambda **t: stack_views(VIEW_LOGITS, transform="probs", **t),
    "gram_objective": lambda **t: gram_objective(VIEW_LOGITS, VIEW_LOGITS, LABELS, 1.0, 1.0, 1.0, 1.0, **t),
    "instance_weights": lambda **t: instance_weights(VIEW_LOGITS, LABELS, **t),
    "weight_features": lambda **t: weight_features(VIEW_LOGITS, VIEW_LOGITS, LABELS, **t),
}

LOSS_FUNCTIONS = _loss_functions_with_a_temperature()
LOSS_TEMPERATURES = [(name, parameter) for name, (_, parameters) in sorted(LOSS_FUNCTIONS.items())
                     for parameter in parameters]
METHOD_TEMPERATURES = _registered_temperature_options(METHODS)
SCHEME_TEMPERATURES = _registered_temperature_options(SCHEMES)


def test_the_registries_and_packages_hold_temperatures_to_check():
    # guards against an empty parametrisation, which would pass without checking anything
    assert {"kd", "msd"} <= {name for name, _ in METHOD_TEMPERATURES}
    assert ("gram", "gram_temperature") in METHOD_TEMPERATURES
    assert {"instance", "meta"} <= {name for name, _ in SCHEME_TEMPERATURES}
    assert {"kd_loss", "msd_loss", "gram_objective"} <= set(LOSS_FUNCTIONS)


def test_every_loss_function_with_a_temperature_is_called_here():
    missing = sorted(set(LOSS_FUNCTIONS) - set(LOSS_CALLS))
    assert not missing, f"add a valid call of {missing} to LOSS_CALLS so their temperature check is tested"


@pytest.mark.parametrize("bad", BAD_TEMPERATURES)
@pytest.mark.parametrize("function_name,option", LOSS_TEMPERATURES)
def test_a_loss_names_itself_and_the_option(function_name, option, bad):
    temperatures = {p: GOOD_TEMPERATURE for p in LOSS_FUNCTIONS[function_name][1]}
    LOSS_CALLS[function_name](**temperatures)  # the call is valid with good temperatures
    with pytest.raises(ValueError) as error:
        LOSS_CALLS[function_name](**{**temperatures, option: bad})
    assert str(error.value) == f"{function_name}: {option} must be > 0, got {bad!r}"


@pytest.mark.parametrize("bad", BAD_TEMPERATURES)
@pytest.mark.parametrize("method,option", METHOD_TEMPERATURES)
def test_a_registered_method_names_itself_and_the_option(method, option, bad):
    make_method(method)  # the defaults are valid
    with pytest.raises(ValueError) as error:
        make_method(method, **{option: bad})
    assert str(error.value) == f"method {method!r}: {option} must be > 0, got {bad!r}"


@pytest.mark.parametrize("bad", BAD_TEMPERATURES)
@pytest.mark.parametrize("scheme,option", SCHEME_TEMPERATURES)
def test_a_weighting_scheme_names_itself_and_the_option(scheme, option, bad):
    make_weighting(scheme, **{option: GOOD_TEMPERATURE})
    with pytest.raises(ValueError) as error:
        make_weighting(scheme, **{option: bad})
    assert str(error.value) == f"weighting {scheme!r}: {option} must be > 0, got {bad!r}"


def test_the_one_temperature_check_needs_to_be_told_its_receiver():
    with pytest.raises(TypeError, match="receiver"):
        check_temperature(1.0)
    check_temperature(1.0, receiver="kd_loss")


def test_a_method_names_itself_when_its_weighting_settings_are_wrong():
    with pytest.raises(ValueError, match=r"^method 'msd': unknown weighting 'learned'"):
        make_method("msd", weighting="learned")
    with pytest.raises(ValueError, match=r"^method 'msd_gram': weighting 'instance': unknown instance_method"):
        make_method("msd_gram", weighting="instance", instance_method="gradcam")


@pytest.mark.parametrize("receiver,call", [
    ("kd_loss", lambda: kd_loss(VIEW_LOGITS["joint"], VIEW_LOGITS["text"], 1.0, reduction="sum")),
    ("kd_loss", lambda: kd_loss(VIEW_LOGITS["joint"], torch.randn(4, 5), 1.0)),
    ("distillation_objective", lambda: distillation_objective(VIEW_LOGITS["joint"], VIEW_LOGITS["text"], LABELS,
                                                              alpha=2.0, temperature=1.0)),
    ("msd_loss", lambda: msd_loss(VIEW_LOGITS, VIEW_LOGITS, LABELS, {"text": 1.0}, 1.0)),
    ("stack_views", lambda: stack_views(VIEW_LOGITS, transform="softmax", temperature=1.0)),
    ("method 'kd'", lambda: make_method("kd", alpha=-0.5)),
    ("method 'ce3'", lambda: make_method("ce3", lam=1.0)),
])
def test_other_bad_arguments_name_their_receiver(receiver, call):
    with pytest.raises(ValueError) as error:
        call()
    assert str(error.value).startswith(receiver)
