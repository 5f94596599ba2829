"""hailortcli output parsing, against recorded real outputs.

Sources of the recorded samples (quoted as data, trimmed to the result blocks):
- BENCHMARK_MODEL_ZOO: hailo-ai/hailo_model_zoo, docs/BENCHMARKS.md ("Example output" of
  `hailortcli benchmark resnet_v1_50.hef`).
- BENCHMARK_FORUM: https://community.hailo.ai/t/why-there-is-no-correlation-between-latency-and-fps-measurements/82
  (`hailortcli benchmark yolov5m_wo_spp_60p.hef` on Hailo-8, as the forum renders it: indentation lost).
- RUN_FORUM: https://community.hailo.ai/t/bottlenecks-using-multiple-hailo8-modules/3223
  (`hailo run yolov5m_wo_spp_60p.hef`, which calls `hailortcli run`).
- RUN_WITH_LATENCY_AND_POWER: the line formats of hailo-ai/hailort hailortcli/infer_stats_printer.cpp
  (print_stdout_single_element / print_stdout: "HW Latency: ... ms", "Overall Latency: ... ms", "Average power
  consumption: ... W", "Maximum chip temperature: ...C"); no public posting of a full `--measure-latency
  --measure-power` run was found, so the figures are illustrative and the layout is the printer's.
"""

import pytest
from hailortcli_output import (
    FilterModule,
    HailortcliOutputError,
    parse_hailortcli_benchmark,
    parse_hailortcli_run,
)

BENCHMARK_MODEL_ZOO = """\
=======
Summary
=======
FPS     (hw_only)                 = 1328.83
        (streaming)               = 1328.8
Latency (hw)                      = 2.93646 ms
Power in streaming mode (average) = 3.19395 W
                        (max)     = 3.20456 W
"""

BENCHMARK_FORUM = """\
Starting Measurements…
Measuring FPS in hw_only mode
Network yolov5m_wo_spp_60p/yolov5m_wo_spp_60p: 100% | 3272 | FPS: 218.10 | ETA: 00:00:00
Measuring FPS and Power in streaming mode
[HailoRT] [warning] Using the overcurrent protection dvm for power measurement will disable the \
ovecurrent protection.
Network yolov5m_wo_spp_60p/yolov5m_wo_spp_60p: 100% | 3272 | FPS: 218.07 | ETA: 00:00:00
Measuring HW Latency
Network yolov5m_wo_spp_60p/yolov5m_wo_spp_60p: 100% | 699 | HW Latency: 12.84 ms | ETA: 00:00:00

=======
Summary

FPS (hw_only) = 218.106
(streaming) = 218.078
Latency (hw) = 12.8354 ms
Device 0000:01:00.0:
Power in streaming mode (average) = 5.30504 W
(max) = 5.3327 W
"""

RUN_FORUM = """\
(hailo) Running command 'run' with 'hailortcli'
Running streaming inference (yolov5m_wo_spp_60p.hef):
  Transform data: true
    Type:      auto
    Quantized: true
Network yolov5m_wo_spp_60p/yolov5m_wo_spp_60p: 100% | 1088 | FPS: 217.33 | ETA: 00:00:00
> Inference result:
 Network group: yolov5m_wo_spp_60p
    Frames count: 1088
    FPS: 217.34
    Send Rate: 2136.58 Mbit/s
    Recv Rate: 3759.88 Mbit/s
"""

RUN_WITH_LATENCY_AND_POWER = """\
Running streaming inference (tcn_encoder.hef):
  Transform data: true
    Type:      auto
    Quantized: true
Network tcn_encoder/tcn_encoder: 100% | 5120 | FPS: 2560.12 | ETA: 00:00:00\r\
> Inference result:
 Network group: tcn_encoder
    Frames count: 5120
    FPS: 2560.12
    Send Rate: 73.73 Mbit/s
    Recv Rate: 6.14 Mbit/s
    HW Latency: 0.41 ms
    Overall Latency: 0.87 ms
  Device: 0001:01:00.0
    Minimum power consumption: 1.02 W
    Average power consumption: 1.31 W
    Maximum power consumption: 1.44 W
    Maximum chip temperature: 48.20C
"""


def test_benchmark_summary_from_model_zoo_docs():
    assert parse_hailortcli_benchmark(BENCHMARK_MODEL_ZOO) == {
        "fps_hw_only": 1328.83,
        "fps_streaming": 1328.8,
        "hw_latency_ms": 2.93646,
        "power_avg_w": 3.19395,
        "power_max_w": 3.20456,
    }


def test_benchmark_summary_with_progress_lines_and_lost_indentation():
    parsed = parse_hailortcli_benchmark(BENCHMARK_FORUM)
    # The progress line "HW Latency: 12.84 ms" comes before the Summary; only the Summary's figure counts.
    assert parsed["hw_latency_ms"] == 12.8354
    assert parsed["fps_hw_only"] == 218.106
    assert parsed["fps_streaming"] == 218.078
    assert parsed["power_avg_w"] == 5.30504
    assert parsed["power_max_w"] == 5.3327


def test_benchmark_without_power_sensor_leaves_power_out():
    text = BENCHMARK_MODEL_ZOO.split("Power in")[0]
    parsed = parse_hailortcli_benchmark(text)
    assert "power_avg_w" not in parsed
    assert "power_max_w" not in parsed
    assert parsed["hw_latency_ms"] == 2.93646


def test_run_result_from_forum_post():
    parsed = parse_hailortcli_run(RUN_FORUM)
    assert parsed == {
        "network_group": "yolov5m_wo_spp_60p",
        "frames_count": 1088,
        "fps": 217.34,  # the result block's figure, not the progress line's 217.33
        "send_rate_mbit_s": 2136.58,
        "recv_rate_mbit_s": 3759.88,
    }
    assert "hw_latency_ms" not in parsed  # run without --measure-latency reports none


def test_run_with_latency_power_and_carriage_return_progress():
    parsed = parse_hailortcli_run(RUN_WITH_LATENCY_AND_POWER)
    assert parsed["network_group"] == "tcn_encoder"
    assert parsed["frames_count"] == 5120
    assert parsed["hw_latency_ms"] == 0.41
    assert parsed["overall_latency_ms"] == 0.87
    assert parsed["power_avg_w"] == 1.31
    assert parsed["power_max_w"] == 1.44
    assert parsed["chip_temp_max_c"] == 48.2


@pytest.mark.parametrize(
    ("parser", "text"),
    [
        (parse_hailortcli_run, "[HailoRT] [error] CHECK failed - Failed to open device file /dev/hailo0\n"),
        (
            parse_hailortcli_benchmark,
            "Starting Measurements...\n[HailoRT] [error] HAILO_OUT_OF_PHYSICAL_DEVICES(74)\n",
        ),
        (parse_hailortcli_benchmark, "=======\nSummary\n=======\n"),
    ],
)
def test_failed_runs_raise_a_clear_error(parser, text):
    with pytest.raises(HailortcliOutputError):
        parser(text)


def test_filters_are_exposed_to_ansible():
    filters = FilterModule().filters()
    assert filters["hailortcli_run"](RUN_FORUM)["fps"] == 217.34
    assert filters["hailortcli_benchmark"](BENCHMARK_MODEL_ZOO)["fps_hw_only"] == 1328.83


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
