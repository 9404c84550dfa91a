"""The run cache and parallel grid: hits, misses after a change, damaged entries, workers = serial."""
import pandas as pd
import pytest
import torch

from mmkd_core import runs
from mmkd_core.determinism import fixed_cpu_threads
from mmkd_core.experiments import get_teacher, get_teacher_cache, prepare_data
from mmkd_core.training.trainer import resolve_precision, uses_cpu

SPECS = [{"label": "CE", "method": "ce"},
         {"label": "KD (transfer set)", "method": "kd", "kwargs": {"temperature": 2.0}, "data": "transfer"}]


def _metrics(rows):
    return [(r["method"], r["seed"], r["validation/accuracy"], r["test/accuracy"], r["best_step"]) for r in rows]


def test_second_request_loads_the_cached_run(experiment):
    config, data, cache = experiment
    first = runs.run_grid(SPECS, [0], config, data, cache, workers=1)
    second = runs.run_grid(SPECS, [0], config, data, cache, workers=1)
    assert not any(r["cached"] for r in first) and all(r["cached"] for r in second)
    assert _metrics(first) == _metrics(second)
    assert isinstance(second[0]["model"], torch.nn.Module)  # the first seed keeps its model, from the cache too
    assert list(second[1]["step_log"].columns) == list(first[1]["step_log"].columns)


def test_any_change_to_the_key_trains_anew(experiment):
    config, data, cache = experiment
    base = runs.run_key(runs.RunSpec("KD", "kd", 0, {"temperature": 2.0}, "transfer"), config, cache, data)
    changed = [runs.run_key(runs.RunSpec("KD", "kd", 1, {"temperature": 2.0}, "transfer"), config, cache, data),
               runs.run_key(runs.RunSpec("KD", "kd", 0, {"temperature": 4.0}, "transfer"), config, cache, data),
               runs.run_key(runs.RunSpec("KD", "kd", 0, {"temperature": 2.0}, "labelled"), config, cache, data),
               runs.run_key(runs.RunSpec("KD", "kd", 0, {"temperature": 2.0}, "transfer"),
                            config.replace(student_lr=1e-3), cache, data)]
    assert len({base, *changed}) == 5
    # "native" precision is keyed on what it resolves to on this machine, so it matches the explicit value
    spec = runs.RunSpec("KD", "kd", 0, {"temperature": 2.0}, "transfer")
    resolved = resolve_precision("native", uses_cpu())
    other = "fp32" if resolved == "bf16" else "bf16"
    assert runs.run_key(spec, config.replace(student_precision="native"), cache, data) == \
        runs.run_key(spec, config.replace(student_precision=resolved), cache, data)
    assert runs.run_key(spec, config.replace(student_precision=other), cache, data) != \
        runs.run_key(spec, config.replace(student_precision="native"), cache, data)
    # the label is a name, not part of what is trained; default arguments normalise away
    assert runs.run_key(runs.RunSpec("other name", "kd", 0, {"temperature": 2.0, "alpha": 0.5}, "transfer"),
                        config, cache, data) == base


def test_a_damaged_entry_is_trained_again(experiment):
    config, data, cache = experiment
    first = runs.run_grid(SPECS[:1], [0], config, data, cache, workers=1)
    key = runs.run_key(runs.RunSpec.from_dict(SPECS[0], 0), config, cache, data)
    folder = runs.cache_root() / key
    (folder / "row.json").write_text("{ not json")
    again = runs.run_grid(SPECS[:1], [0], config, data, cache, workers=1)
    assert not again[0]["cached"] and _metrics(again) == _metrics(first)
    (folder / "complete").unlink()  # a partial entry: written, never finished
    assert runs.load_entry(folder, keep_model=False) is None


def test_fresh_retrains_what_was_cached_before_and_shares_what_it_trained(experiment, monkeypatch):
    import time

    config, data, cache = experiment
    runs.run_grid(SPECS[:1], [0], config, data, cache, workers=1)
    time.sleep(0.05)  # the entry's mtime lies strictly before the reproduction's start
    monkeypatch.setenv("MMKD_FRESH", "1")
    monkeypatch.setenv(runs.FRESH_SINCE_ENV, repr(time.time()))  # what make reproduce sets as it starts
    assert not runs.run_grid(SPECS[:1], [0], config, data, cache, workers=1)[0]["cached"]
    # ... and the run it trained serves the next notebook of the same reproduction
    assert runs.run_grid(SPECS[:1], [0], config, data, cache, workers=1)[0]["cached"]


def test_parallel_workers_give_bit_identical_results(experiment):
    config, data, cache = experiment
    serial = runs.run_grid(SPECS, [0, 1], config, data, cache, workers=1, use_cache=False)
    parallel = runs.run_grid(SPECS, [0, 1], config, data, cache, workers=2, use_cache=False)
    assert _metrics(serial) == _metrics(parallel)
    for a, b in zip(serial, parallel):
        assert a["step_log"].equals(b["step_log"])


def test_the_worker_pool_serves_the_next_grid_of_the_same_experiment_only(experiment):
    config, data, cache = experiment
    runs.run_grid(SPECS[:1], [0, 1], config, data, cache, workers=2, use_cache=False)
    pool = runs._POOL["pool"]
    pids = set(pool._processes)
    # a one-off run with its own seeds, next to the table's: same pool, same worker processes
    rows = runs.run_grid([SPECS[0], {**SPECS[1], "seeds": [1]}], [0, 1], config, data, cache, workers=2,
                         use_cache=False)
    assert [(r["method"], r["seed"]) for r in rows] == [(SPECS[0]["label"], 0), (SPECS[0]["label"], 1),
                                                         (SPECS[1]["label"], 1)]
    assert runs._POOL["pool"] is pool and set(pool._processes) == pids
    other = config.replace(student_lr=config.student_lr * 2)  # another experiment: a new pool
    runs.run_grid(SPECS[:1], [0, 1], other, data, cache, workers=2, use_cache=False)
    assert runs._POOL["pool"] is not pool
    runs.close_worker_pool()
    assert not runs._POOL


def test_a_failing_worker_names_its_run(experiment):
    config, data, cache = experiment
    bad = [{"label": "broken MSD", "method": "msd", "kwargs": {"weighting": "meta"}, "data": "transfer"}]
    with pytest.raises(RuntimeError, match="broken MSD"):
        runs.run_grid(bad, [0, 1], config, data.__class__(**{**data.__dict__, "validation": None}), cache,
                      workers=2, use_cache=False)


def test_grid_submits_the_longest_runs_first(experiment):
    """The pool ends on short runs: three-view and meta-weighted transfer runs go before joint ones, and runs on
    the few labelled rows last (what ``run_grid`` sorts its uncached runs by)."""
    config, data, cache = experiment
    cost = {name: runs.expected_cost(runs.RunSpec(name, method, 0, kwargs, rows), data)
            for name, method, kwargs, rows in [
                ("meta", "msd", {"weighting": "meta", "temperature": 2.0}, "transfer"),
                ("gram", "gram", {"temperature": 2.0}, "transfer"),
                ("kd", "kd", {"temperature": 2.0}, "transfer"),
                ("kd labelled", "kd", {"temperature": 2.0}, "labelled"),
                ("ce", "ce", {}, "labelled")]}
    assert cost["meta"] > cost["gram"] > cost["kd"] > cost["kd labelled"] == cost["ce"]


def test_gram_runs_record_their_g_without_changing_training(experiment, monkeypatch):
    """Figure 2 reads G from the Table 1 run itself: a Gram run records the mean G of the first validation rows
    at every validation (kept through the run cache), and recording leaves the training bit-identical."""
    from mmkd_core.experiments import multimodal

    config, data, cache = experiment
    spec = [{"label": "Gram", "method": "gram", "kwargs": {"temperature": 2.0}, "data": "transfer"}]
    recorded = runs.run_grid(spec, [0], config, data, cache, workers=1)[0]
    snapshots = multimodal.gram_snapshots(recorded)
    assert [step for step, _ in snapshots] == list(recorded["evaluation_log"]["step"])
    assert all(g.shape == (3, 3) and abs(g - g.T).max() < 1e-6 for _, g in snapshots)  # G = A·Aᵀ is symmetric
    again = runs.run_grid(spec, [0], config, data, cache, workers=1)[0]  # from the cache
    assert again["cached"]
    pd.testing.assert_frame_equal(again["gram_snapshots"], recorded["gram_snapshots"], check_dtype=False)
    monkeypatch.setattr(multimodal.GramRecorder, "for_method", classmethod(lambda cls, *a, **k: None))
    with fixed_cpu_threads("cpu", 1):  # run_grid's one thread per run: reductions split the same way
        plain = multimodal.run_student("gram", 0, config, data, cache, method_kwargs={"temperature": 2.0},
                                       student_data="transfer")
    assert "gram_snapshots" not in plain
    pd.testing.assert_frame_equal(plain["step_log"], recorded["step_log"], check_dtype=False)
    kd = runs.run_grid(SPECS[1:], [0], config, data, cache, workers=1)[0]
    assert "gram_snapshots" not in kd
    with pytest.raises(ValueError, match="no gram_snapshots"):
        multimodal.gram_snapshots(kd)


def test_a_sweep_over_transfer_set_sizes_trains_each_size(experiment):
    """The cache keys a run on the rows it reads, not on the data's name: two transfer sets, two results."""
    import dataclasses

    config, data, cache = experiment
    spec = [{"label": "KD (transfer set)", "method": "kd", "kwargs": {"temperature": 2.0}, "data": "transfer"}]
    sizes = {}
    for size in (48, 96):
        subset = dataclasses.replace(data, transfer=data.transfer.first(size))
        [row] = runs.run_grid(spec, [0], config, subset, cache, workers=1)
        sizes[size] = row
    assert not sizes[96]["cached"], "the second size was served the first size's cached run"
    assert sizes[48]["step_log"]["step"].max() != sizes[96]["step_log"]["step"].max() or \
        not sizes[48]["step_log"].equals(sizes[96]["step_log"])
    # ... and asking for a size again is a cache hit
    [again] = runs.run_grid(spec, [0], config, dataclasses.replace(data, transfer=data.transfer.first(48)), cache,
                            workers=1)
    assert again["cached"] and again["test/accuracy"] == sizes[48]["test/accuracy"]


def test_the_source_hash_covers_every_module_a_run_imports_and_no_other():
    modules = runs.training_modules()
    for needed in ("mmkd_core.runs", "mmkd_core.training.trainer", "mmkd_core.training.methods",
                   "mmkd_core.training.methods.kd", "mmkd_core.training.methods.msd_gram",
                   "mmkd_core.training.modality_dropout", "mmkd_core.evaluation.precision", "mmkd_core.losses.kd",
                   "mmkd_core.losses.gram", "mmkd_core.weighting.meta",
                   "mmkd_core.models.multimodal", "mmkd_core.data.shapes", "mmkd_core.experiments.multimodal"):
        assert needed in modules
    for reporting_only in ("mmkd_core.plots", "mmkd_core.results", "mmkd_core.reproduce", "mmkd_core.bench"):
        assert reporting_only not in modules
    # what a worker really imports: a fresh interpreter that imports the entry module loads exactly these
    import subprocess
    import sys

    loaded = subprocess.run([sys.executable, "-c", "import sys, mmkd_core.runs; print(' '.join(sorted(m for m in "
                             "sys.modules if m.startswith('mmkd_core'))))"], capture_output=True, text=True,
                            check=True).stdout.split()
    assert set(loaded) == set(modules)


def test_a_new_module_imported_by_a_run_changes_the_source_hash(monkeypatch, tmp_path):
    known = runs.module_files()
    before = runs.source_hash()
    edited = dict(known)
    trainer_copy = tmp_path / "trainer.py"
    trainer_copy.write_text(known["mmkd_core.training.trainer"].read_text() + "\n# an edit\n")
    edited["mmkd_core.training.trainer"] = trainer_copy
    monkeypatch.setattr(runs, "module_files", lambda: edited)
    assert runs.source_hash() != before


def test_a_new_method_file_changes_the_source_hash_though_no_statement_imports_it(monkeypatch, tmp_path):
    """The methods package imports its folder at run time (sources.import_submodules): a file added there is in
    every run's key, and so is each later edit of it. The new file is a copy outside the package (the real folder
    is shared with whatever else runs), entered into the package's module list as a real new file would be."""
    known = runs.module_files()
    before = runs.source_hash()
    new_method = tmp_path / "new_method.py"
    new_method.write_text('"""A method added as one new file."""\n')
    monkeypatch.setattr(runs, "module_files", lambda: {**known, "mmkd_core.training.methods.new_method": new_method})
    assert "mmkd_core.training.methods.new_method" in runs.training_modules()
    added = runs.source_hash()
    assert added != before
    new_method.write_text('"""A method added as one new file, then edited."""\n')
    assert runs.source_hash() not in (before, added)


def test_meta_learning_on_held_out_labelled_rows_never_reads_validation(experiment, monkeypatch):
    """Protocol v3: with meta_rows, MSD meta's weight net learns on the last meta_rows of the labelled rows, which it
    does not train its CE on; no validation row reaches its meta step. Other methods keep every labelled row."""
    import mmkd_core.weighting.schemes as schemes
    from mmkd_core.experiments import prepare_data, run_student

    config, data, cache = experiment
    meta_config = config.replace(meta_rows=16)
    meta_data = prepare_data(meta_config)
    n = len(meta_data.train)
    assert len(meta_data.meta) == 16 and meta_data.meta.tensors["index"].tolist() == list(range(n - 16, n))
    read = []
    cycle = schemes._cycle

    def spy(dataset, *args):
        read.append(dataset)
        return cycle(dataset, *args)

    from mmkd_core.training import trainer
    trained_on = []
    batches = trainer.iterate_batches

    def training_batches(dataset, *args, **kwargs):
        trained_on.append(dataset)
        return batches(dataset, *args, **kwargs)

    monkeypatch.setattr(schemes, "_cycle", spy)
    monkeypatch.setattr(trainer, "iterate_batches", training_batches)
    run_student("msd", 0, meta_config, meta_data, cache, method_kwargs={"weighting": "meta"}, student_data="transfer")
    assert read == [meta_data.meta] and read[0] is not meta_data.validation
    assert trained_on and all(d is not meta_data.validation for d in trained_on)  # no optimiser step on validation
    trained = meta_data.student_rows("transfer", learns_on_meta_data=True)
    labelled = trained.tensors["labels"] != -100
    assert int(labelled.sum()) == n - 16  # the meta rows' labels are not trained on ...
    assert not labelled[n - 16:n].any()   # ... those rows are distilled only, like the unlabelled ones
    assert meta_data.student_rows("transfer") is meta_data.transfer  # every other method: all n labelled rows
    # protocol v2 (no meta rows): the meta step reads validation, as before
    read.clear()
    run_student("msd", 0, config, data, cache, method_kwargs={"weighting": "meta"}, student_data="transfer")
    assert read == [data.validation]
    with pytest.raises(ValueError, match=r"meta_rows must lie in \[1, "):
        prepare_data(config.replace(meta_rows=len(data.train)))


def test_warm_up_in_passes_over_the_runs_own_rows_and_the_all_labels_control(experiment):
    """Protocol v3's warm-up: student_warmup_epochs passes over the run's rows (the labelled-only student's warm-up
    no longer spans its whole run); and the control CE (all labels) trains on every pool row with its label."""
    from mmkd_core.experiments import all_labels_control, student_train_config
    from mmkd_core.training.trainer import lr_multiplier

    config, data, cache = experiment
    v2 = student_train_config(config, 0, data.train)
    v3 = student_train_config(config.replace(student_warmup_epochs=2.0), 0, data.train)
    assert v2.warmup_steps is None and v3.warmup_steps == 2  # 32 labelled rows at batch 32: 1 step a pass
    factor = lr_multiplier(v3, 6)
    assert [factor(step) for step in range(3)] == [0.5, 1.0, 1.0]
    assert student_train_config(config.replace(student_warmup_epochs=2.0), 0, data.transfer).warmup_steps == 6
    rows = data.student_rows("all_labels")
    assert rows is data.teacher_train and bool((rows.tensors["labels"] >= 0).all())
    [row] = runs.run_grid([all_labels_control()], [0], config, data, cache, workers=1)
    assert row["method"] == "CE (all labels)" and row["data"] == "all_labels"
    with pytest.raises(ValueError, match="unknown student data 'pool'; accepted: \\['labelled', 'transfer', 'all_labels'\\]"):
        data.student_rows("pool")


def test_tune_chooses_the_best_mean_over_tuning_seeds_and_extends_an_edge_once(experiment, monkeypatch):
    """The one tuning protocol: every cell on every tuning seed, the best mean wins, a numeric choice on the grid's
    edge is extended once beyond it (geometrically), a value the method refuses is not tried."""
    config, data, cache = experiment
    trained = []

    def fake_grid(specs, seeds, *args, **kwargs):  # validation accuracy peaks at T = 8, lr 2e-3; seed 1 adds noise
        rows = []
        for spec in specs:
            trained.append(spec)
            t, lr = spec["kwargs"].get("temperature", 4.0), spec["config"].get("student_lr", 2e-3)
            alpha = spec["kwargs"].get("alpha", 0.5)
            rows += [{"validation/accuracy": 0.5 + 0.01 * min(t, 8) - abs(lr - 2e-3) * 10 + 0.001 * seed + 0.01 * alpha}
                     for seed in seeds]
        return rows

    monkeypatch.setattr(runs, "run_grid", fake_grid)
    base = {"label": "KD", "method": "kd", "kwargs": {"alpha": 0.5}, "data": "transfer"}
    chosen, table = runs.tune(base, {"temperature": [1.0, 2.0], "config.student_lr": [1e-3, 2e-3]}, config, data,
                              cache, seeds=[100, 101])
    # T = 2 is the upper edge: 4 is tried (x 2), chosen, and not extended again; lr 2e-3 (an edge) is extended to 4e-3
    assert chosen == {"temperature": 4.0, "config.student_lr": 2e-3}
    assert sorted(table["temperature"].unique()) == [1.0, 2.0, 4.0]
    assert sorted(table["config.student_lr"].unique()) == pytest.approx([1e-3, 2e-3, 4e-3])
    assert len(table) == 9 and int(table["chosen"].sum()) == 1 and table["from the edge extension"].sum() == 5
    assert set(table.columns) >= {"validation/accuracy (mean)", "validation/accuracy (seed 100)", "seeds"}
    assert trained[0]["label"] == "KD [temperature=1, student_lr=0.001]" and trained[0]["config"] == {"student_lr": 1e-3}
    # an edge the method refuses stays the edge: alpha = 1 is chosen and cannot pass 1
    chosen, table = runs.tune({"label": "KD", "method": "kd", "data": "transfer"}, {"alpha": [0.5, 1.0]}, config,
                              data, cache, seeds=[100])
    assert chosen == {"alpha": 1.0} and sorted(table["alpha"]) == [0.5, 1.0]


def test_a_spec_may_change_the_students_settings_but_not_the_teachers(experiment):
    config, data, cache = experiment
    [row] = runs.run_grid([{"label": "CE lr", "method": "ce", "config": {"student_lr": 1e-2}}], [0], config, data,
                          cache, workers=1)
    [default] = runs.run_grid([{"label": "CE", "method": "ce"}], [0], config, data, cache, workers=1)
    assert row["step_log"]["lr"].max() > default["step_log"]["lr"].max()
    with pytest.raises(ValueError, match="'config' may change the student's ExperimentConfig fields"):
        runs.run_grid([{"label": "bad", "method": "ce", "config": {"teacher_lr": 1.0}}], [0], config, data, cache)


def test_student_seed_s_distils_teacher_s_mod_the_number_of_teachers(experiment):
    """Protocol v3's several teachers: seeds 0 and 2 distil the first teacher, seed 1 the second, rows in spec x seed
    order with their teacher's seed; a run equals the same run of a one-teacher grid (the cache serves it)."""
    from mmkd_core.experiments import Experiment, get_teacher, get_teacher_cache

    config, data, cache = experiment
    other_config = config.replace(teacher_seed=config.teacher_seed + 1)
    other_teacher, info = get_teacher(other_config, data, progress=False)
    first = Experiment(config, data, None, {}, cache)
    second = Experiment(other_config, data, other_teacher, info, get_teacher_cache(other_teacher, data, other_config))
    rows = runs.run_grid_over_teachers(SPECS, [0, 1, 2], [first, second], workers=1)
    assert [(r["method"], r["seed"], r["teacher_seed"]) for r in rows] == [
        (spec["label"], seed, config.teacher_seed + (seed % 2)) for spec in SPECS for seed in (0, 1, 2)]
    alone = runs.run_grid(SPECS, [0], config, data, cache, workers=1)
    assert _metrics(alone) == _metrics([r for r in rows if r["seed"] == 0])
    assert second.cache.teacher_key != cache.teacher_key
    from mmkd_core.experiments import Protocol
    assert Protocol.named("fast", teacher_seeds=(1, 2, 3)).teacher_seeds_for("nlvr") == (None,)
    assert Protocol.named("fast", teacher_seeds=(1, 2, 3)).teacher_seeds_for("ve") == (1, 2, 3)


def test_the_teachers_own_rows_lie_past_the_students_pool_and_its_outputs_cover_the_pool(experiment):
    """Benchmark v2: teacher_rows gives the teacher rows of its own, past the students' pool (the generator's stream
    continued, so the pool is row for row the same), and the teacher cache covers the students' pool, not them."""
    config, data, cache = experiment
    own = config.replace(teacher_rows=40)
    own_data = prepare_data(own)
    assert len(own_data.teacher_train) == 40 and len(own_data.pool) == len(data.pool) == 96
    assert torch.equal(own_data.pool.tensors["pixel_values"], data.pool.tensors["pixel_values"])
    assert torch.equal(own_data.transfer.tensors["labels"], data.transfer.tensors["labels"])
    assert not any(torch.equal(row, pool_row) for row in own_data.teacher_train.tensors["pixel_values"][:5]
                   for pool_row in data.pool.tensors["pixel_values"])  # new rows, not the pool's
    assert own.key() != config.key()
    assert config.replace(teacher_rows=None).key() == config.key()  # at its default, the teacher keeps its key
    teacher, _ = get_teacher(own, own_data, progress=False)
    own_cache = get_teacher_cache(teacher, own_data, own)
    assert own_cache.logits["joint"].shape[0] == len(own_data.pool)
    assert own_data.student_rows("all_labels") is own_data.pool  # the control reads the pool, not the teacher's rows
    with pytest.raises(ValueError, match="teacher_rows must be None or an integer >= 1"):
        prepare_data(config.replace(teacher_rows=0))
    with pytest.raises(ValueError, match="needs the generated 'shapes' benchmark"):
        from mmkd_core.experiments.multimodal import teacher_rows
        teacher_rows(config.replace(dataset="hateful_memes", teacher_rows=10), 96)


def test_transfer_rows_cut_the_transfer_set_and_key_the_run(experiment):
    """The regime map's transfer sizes: the labelled rows plus the next transfer_rows pool rows, labels hidden."""
    config, data, cache = experiment
    for size, expected in ((0, 32), (20, 52), (None, 96), (500, 96)):
        rows = data.student_rows("transfer", transfer_rows=size)
        assert len(rows) == expected
        assert int((rows.tensors["labels"] != -100).sum()) == 32
    assert data.student_rows("labelled", transfer_rows=20) is data.train  # only the transfer set has a size
    keys = {runs.run_key(runs.RunSpec("KD", "kd", 0, data="transfer", config={"transfer_rows": size}), config, cache,
                         data) for size in (0, 20, None)}
    assert len(keys) == 3
    with pytest.raises(ValueError, match="transfer_rows must be None or an integer >= 0"):
        data.student_rows("transfer", transfer_rows=-1)


def test_the_step_floor_holds_every_method_alike(experiment):
    """student_min_steps: no early stop before this many steps, for a run of 32 rows as for one of 96."""
    from mmkd_core.experiments import student_train_config

    config, data, _ = experiment
    assert student_train_config(config, 0, data.train).min_steps == 0  # the fast preset: no floor
    floor = config.replace(student_min_steps=25)
    assert student_train_config(floor, 0, data.train).min_steps == 25
    assert student_train_config(floor.replace(student_min_epochs=30.0), 0, data.transfer).min_steps == 90  # 3 a pass
