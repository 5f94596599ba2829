"""hailortcli output parsing.

`run` and `benchmark` are read from the CSV their `--csv FILE` writes. The samples below are laid out as
hailo-ai/hailort's hailortcli/infer_stats_printer.cpp writes them (print_csv_header + print_csv for `run`:
18 columns, power, current and temperature as three empty fields each when not measured; a failed run ends
after its status description; print_benchmark_csv_header + print_benchmark_csv for `benchmark`). The figures
come from published outputs of the same runs (hailo_model_zoo docs/BENCHMARKS.md for resnet_v1_50; the Hailo
forum's yolov5m_wo_spp_60p run, community.hailo.ai/t/3223); the tcn_encoder figures are illustrative.
"""

import pytest
from hailortcli_output import (
    FilterModule,
    HailortcliOutputError,
    parse_hailortcli_benchmark,
    parse_hailortcli_run,
)

RUN_HEADER = (
    "net_name,status,status_description,fps,num_of_frames,send_rate,recv_rate,hw_latency,overall_latency,"
    "min_power,average_power,max_power,min_current,average_current,max_current,min_temp,average_temp,max_temp\n"
)
BENCHMARK_HEADER = (
    "net_name,fps,hw_only_fps,num_of_frames,num_of_frames_hw_only,hw_latency,overall_latency,"
    "min_power,average_power,max_power\n"
)

# `hailortcli run yolov5m_wo_spp_60p.hef --csv run.csv`: no latency, power or temperature asked for.
RUN_PLAIN = RUN_HEADER + "yolov5m_wo_spp_60p,0,Success,217.34,1088,2136.58,3759.88,,,,,,,,,,,\n"
# `hailortcli run tcn_encoder_hailo8l.hef --measure-latency --measure-overall-latency --measure-power
# --measure-temp --csv run.csv`
RUN_MEASURED = (
    RUN_HEADER + "tcn_encoder,0,Success,2560.12,5120,73.73,6.14,0.41,0.87,1.02,1.31,1.44,,,,46.1,47.3,48.2\n"
)
# A run that could not open the chip: status and description, then the empty fields, no line end.
RUN_FAILED = RUN_HEADER + "tcn_encoder,74,HAILO_OUT_OF_PHYSICAL_DEVICES,,,,,,,,,,,"

# `hailortcli benchmark resnet_v1_50.hef --csv bench.csv`
BENCHMARK_MEASURED = (
    BENCHMARK_HEADER + "resnet_v1_50,1328.8,1328.83,19932,19932,2.93646,,3.18,3.19395,3.20456\n"
)
# The same on a board without a power sensor (`--no-power true`): the three power fields are empty.
BENCHMARK_NO_POWER = BENCHMARK_HEADER + "resnet_v1_50,1328.8,1328.83,19932,19932,2.93646,3.41,,,\n"


def test_benchmark_csv_figures():
    assert parse_hailortcli_benchmark(BENCHMARK_MEASURED) == {
        "fps_hw_only": 1328.83,
        "fps_streaming": 1328.8,
        "hw_latency_ms": 2.93646,
        "power_avg_w": 3.19395,
        "power_max_w": 3.20456,
    }


def test_benchmark_without_power_sensor_leaves_power_out():
    parsed = parse_hailortcli_benchmark(BENCHMARK_NO_POWER)
    assert "power_avg_w" not in parsed and "power_max_w" not in parsed
    assert parsed["overall_latency_ms"] == 3.41


def test_run_without_measurements_reports_only_rates():
    assert parse_hailortcli_run(RUN_PLAIN) == {
        "network_group": "yolov5m_wo_spp_60p",
        "frames_count": 1088,
        "fps": 217.34,
        "send_rate_mbit_s": 2136.58,
        "recv_rate_mbit_s": 3759.88,
    }


def test_run_with_latency_power_and_temperature():
    parsed = parse_hailortcli_run(RUN_MEASURED)
    assert parsed["network_group"] == "tcn_encoder"
    assert parsed["frames_count"] == 5120
    assert parsed["hw_latency_ms"] == 0.41
    assert parsed["overall_latency_ms"] == 0.87
    assert (parsed["power_min_w"], parsed["power_avg_w"], parsed["power_max_w"]) == (1.02, 1.31, 1.44)
    assert parsed["chip_temp_max_c"] == 48.2


@pytest.mark.parametrize(
    ("parser", "text", "fragment"),
    [
        (parse_hailortcli_run, RUN_FAILED, "HAILO_OUT_OF_PHYSICAL_DEVICES"),
        (parse_hailortcli_run, "", "no hailortcli CSV result"),
        (parse_hailortcli_run, RUN_HEADER, "no hailortcli CSV result"),
        (parse_hailortcli_benchmark, BENCHMARK_HEADER, "no hailortcli CSV result"),
        (parse_hailortcli_benchmark, BENCHMARK_HEADER + "resnet_v1_50,,,,,,,,,\n", "no hw_only_fps"),
        (parse_hailortcli_benchmark, RUN_MEASURED, "no hailortcli CSV result"),  # the wrong command's file
    ],
)
def test_failed_or_foreign_results_raise_a_clear_error(parser, text, fragment):
    with pytest.raises(HailortcliOutputError, match=fragment):
        parser(text)


def test_filters_are_exposed_to_ansible():
    filters = FilterModule().filters()
    assert filters["hailortcli_run"](RUN_PLAIN)["fps"] == 217.34
    assert filters["hailortcli_benchmark"](BENCHMARK_MEASURED)["fps_hw_only"] == 1328.83


# `hailortcli fw-control identify` on a Pi 5 with the AI Kit (HailoRT 4.17), quoted in public install guides;
# the Hailo-10H board prints no Board Name line.
IDENTIFY_AI_KIT = """\
Executing on device: 0000:01:00.0
Identifying board
Control Protocol Version: 2
Firmware Version: 4.17.0 (release,app,extended context switch buffer)
Logger Version: 0
Board Name: Hailo-8
Device Architecture: HAILO8L
Serial Number: HLDDLBB234500054
"""


def test_identify_reads_architecture_and_firmware() -> None:
    parsed = FilterModule().filters()["hailortcli_identify"](IDENTIFY_AI_KIT)
    assert (parsed["architecture"], parsed["firmware_version"]) == ("HAILO8L", "4.17.0")
    assert parsed["fields"]["Board Name"] == "Hailo-8"


def test_identify_without_the_optional_lines() -> None:
    parsed = FilterModule().filters()["hailortcli_identify"]("Device Architecture: HAILO10H\n")
    assert parsed == {
        "fields": {"Device Architecture": "HAILO10H"},
        "architecture": "HAILO10H",
        "firmware_version": None,
    }
