#!/usr/bin/env python3
"""Reads ssm's TensorBoard event files with TensorBoard itself.

    check_tensorboard.py ARTIFACT_DIR

ARTIFACT_DIR is what `ssm_test_train --gtest_filter=PythonArtifacts.*` wrote (with
SSM_TEST_ARTIFACT_DIR set): tensorboard/ (one run), tensorboard_resumed/ (a run interrupted
after step 15 and resumed from step 10, two files) and expected.json. Checks:
  1. every record passes TensorBoard's own TFRecord reader (length and payload CRC-32C), and
     that reader really rejects a file with one flipped payload byte;
  2. every record parses as tensorboard.Event with the generated protobuf classes: the first
     carries file_version "brain.Event:2", scalars are Summary.Value{tag, simple_value};
  3. EventAccumulator (what the TensorBoard UI loads) shows exactly the expected tags, steps and
     float32 values, with wall times inside the test's time window, and drops the interrupted
     attempt's steps 11-15 in favour of the resumed ones.
"""
import json
import os
import shutil
import struct
import sys
import tempfile

from tensorboard.backend.event_processing import event_accumulator
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.tensorflow_stub import errors
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import PyRecordReader_New


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def records(path):
    reader = PyRecordReader_New(path)
    out = []
    while True:
        try:
            reader.GetNext()
        except errors.OutOfRangeError:
            return out
        out.append(reader.record())


def event_files(directory):
    names = sorted(n for n in os.listdir(directory) if n.startswith("events.out.tfevents."))
    assert names, f"no event files in {directory}"
    return [os.path.join(directory, n) for n in names]


def check_records(path, t0, t1):
    events = [event_pb2.Event.FromString(r) for r in records(path)]
    assert events, path
    assert events[0].WhichOneof("what") == "file_version", events[0]
    assert events[0].file_version == "brain.Event:2", events[0].file_version
    for ev in events:
        assert t0 - 1e-3 <= ev.wall_time <= t1 + 1e-3, (ev.wall_time, t0, t1)
    for ev in events[1:]:
        kind = ev.WhichOneof("what")
        if kind == "session_log":
            assert ev.session_log.status == event_pb2.SessionLog.START, ev
            continue
        assert kind == "summary", ev
        assert len(ev.summary.value) == 1, ev
        v = ev.summary.value[0]
        assert v.WhichOneof("value") == "simple_value", v
    return events


def check_crc_is_enforced(path):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    first_len = struct.unpack("<Q", data[:8])[0]
    data[12 + first_len // 2] ^= 0x01  # a byte inside the first record's payload
    tmp = tempfile.mkdtemp()
    try:
        bad = os.path.join(tmp, os.path.basename(path))
        with open(bad, "wb") as f:
            f.write(data)
        try:
            records(bad)
        except errors.DataLossError:
            return
        raise AssertionError("a corrupted record was accepted: CRCs are not being checked")
    finally:
        shutil.rmtree(tmp)


def check_scalars(path, expected, t0, t1):
    acc = event_accumulator.EventAccumulator(path, size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    tags = sorted(acc.Tags()["scalars"])
    assert tags == sorted(expected), (tags, sorted(expected))
    for tag, points in expected.items():
        got = acc.Scalars(tag)
        steps = [e.step for e in got]
        want_steps = [p[0] for p in points]
        assert steps == want_steps, (tag, steps, want_steps)
        for e, (step, value) in zip(got, points):
            assert e.value == f32(value), (tag, step, e.value, value)
            assert t0 - 1e-3 <= e.wall_time <= t1 + 1e-3, (tag, step, e.wall_time)
    return sum(len(p) for p in expected.values())


def main():
    art = sys.argv[1]
    with open(os.path.join(art, "expected.json")) as f:
        exp = json.load(f)
    t0, t1 = exp["t0"], exp["t1"]

    single = event_files(os.path.join(art, "tensorboard"))
    assert len(single) == 1, single
    n_events = len(check_records(single[0], t0, t1))
    check_crc_is_enforced(single[0])
    n_single = check_scalars(single[0], exp["single"], t0, t1)

    resumed_dir = os.path.join(art, "tensorboard_resumed")
    files = event_files(resumed_dir)
    assert len(files) == 2, files
    check_records(files[0], t0, t1)
    second = check_records(files[1], t0, t1)
    starts = [ev.step for ev in second if ev.WhichOneof("what") == "session_log"]
    assert starts == [11], starts
    n_resumed = check_scalars(resumed_dir, exp["resumed"], t0, t1)

    print(f"check_tensorboard: {n_events} records, {n_single} scalars of one run and "
          f"{n_resumed} of a resumed run read back by TensorBoard: OK")


if __name__ == "__main__":
    main()
