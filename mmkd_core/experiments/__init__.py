"""The experiments, one module each; the multimodal one (notebooks 02-06, ``run.py``) is re-exported here.

* :mod:`.protocol`: ``Protocol`` (every seed, grid and size the notebooks use, declared once) and
  ``open_experiment(protocol, task)``, the one way a notebook opens an experiment;
* :mod:`.multimodal`: ``ExperimentConfig`` and its presets, ``setup(config)`` (data, teacher, teacher cache),
  ``build_model``, ``run_student`` (one student → one row);
* :mod:`.vision`: notebook 01's label efficiency of feature KD (k labels per class, linear probe);
* :mod:`.knobs`: notebook 00's measurement of the benchmark's modality-reliance knobs;
* :mod:`.pretrained_teacher`: notebook 06's two-tower teacher (tower features, fusion head, pretraining sweep),
  each step cached so that ``make reproduce`` prepares it with the other teachers.
"""
from .multimodal import (PRESETS, STUDENT_DATA, STUDENT_FIELDS, TASK_TEACHER_SETTINGS, Experiment, ExperimentConfig,
                         ExperimentData, add_throughput, build_model, checkpoint_dir, get_teacher, get_teacher_cache,
                         inference_throughput, prepare_data, run_student, runs_dir, setup, slug, split_metrics,
                         student_train_config, teacher_checkpoint_exists, teacher_row, trained_models)
from .protocol import (CE_ALL_LABELS_LABEL, CE_LABEL, KD_LABELLED_LABEL, KD_TRANSFER_LABEL, KnobStudy,
                       LabelEfficiencyStudy, PretrainingCurve, Protocol, all_labels_control, baseline_specs,
                       open_experiment, open_experiments)

__all__ = ["CE_ALL_LABELS_LABEL", "CE_LABEL", "KD_LABELLED_LABEL", "KD_TRANSFER_LABEL", "PRESETS", "STUDENT_DATA",
           "STUDENT_FIELDS", "TASK_TEACHER_SETTINGS", "add_throughput", "all_labels_control", "baseline_specs",
           "build_model", "checkpoint_dir", "Experiment", "ExperimentConfig", "ExperimentData", "get_teacher",
           "get_teacher_cache", "inference_throughput", "KnobStudy", "LabelEfficiencyStudy", "open_experiment",
           "prepare_data", "PretrainingCurve", "Protocol", "run_student", "runs_dir", "setup", "slug",
           "split_metrics", "student_train_config", "teacher_checkpoint_exists", "teacher_row", "trained_models"]
