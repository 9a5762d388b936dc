"""Apple-only behaviour, exercised on Linux through fakes (what was verified where: docs/architecture.md)."""

import types

from workbench import machine
from workbench.commands import doctor
from workbench.engine.memory import wired_limit


class FakeMx:
    def __init__(self, metal):
        self.metal = types.SimpleNamespace(is_available=lambda: metal)
        self.calls = []

    def device_info(self):
        return {"max_recommended_working_set_size": 96 << 30}

    def set_wired_limit(self, n):
        self.calls.append(("wired", n))
        return 0

    def synchronize(self):
        self.calls.append(("sync",))


def test_wired_limit_raised_and_restored_on_metal():
    mx = FakeMx(metal=True)
    with wired_limit(mx):
        assert mx.calls == [("wired", 96 << 30)]
    assert mx.calls == [("wired", 96 << 30), ("sync",), ("wired", 0)]


def test_wired_limit_is_a_no_op_without_metal():
    mx = FakeMx(metal=False)
    with wired_limit(mx):
        pass
    assert mx.calls == []


def test_doctor_reads_sysctl_on_macos(monkeypatch):
    answers = {"hw.memsize": "137438953472", "machdep.cpu.brand_string": "Apple M3 Max"}
    monkeypatch.setattr(machine.sys, "platform", "darwin")
    monkeypatch.setattr(machine, "sysctl", answers.get)
    assert machine.memory_bytes() == 128 << 30
    assert machine.chip() == "Apple M3 Max"


def test_doctor_report_on_linux_names_the_blas():
    report = doctor.report()
    assert report["mlx"] != "not installed" and "ring" in report["distributed"]
    assert "blas" in report
