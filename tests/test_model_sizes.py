"""The sizes line every multimodal notebook prints (analysis.model_sizes)."""
from mmkd_core import analysis
from mmkd_core.experiments import ExperimentConfig, build_model, prepare_data
from mmkd_core.evaluation.probes import count_parameters


def test_model_sizes_names_layers_width_heads_and_parameters_of_both_models():
    config = ExperimentConfig.preset("fast", student_overrides={"num_hidden_layers": 1})
    data = prepare_data(config)
    line = analysis.model_sizes(config, data)
    teacher, student = line.split("; ")
    assert teacher.startswith("teacher: 4 layers, width 96, 4 heads, ")
    assert student.startswith("student: 1 layer, width 64, 4 heads, ")
    assert f"{count_parameters(build_model(config, data, 'student')):,} parameters" in student
