import json

import pytest

from tuneforge import storage
from tuneforge.data import ChatEncoder, Report, parse_lines
from tuneforge.data.stats import distribution, supervised_tuning_data_stats


def test_distribution_fields_and_values():
    values = list(range(1, 101))
    d = distribution(values, billable_multiplier=2)
    assert d["sum"] == "5050" and d["billableSum"] == "10100"
    assert (d["min"], d["max"], d["mean"], d["median"]) == (1.0, 100.0, 50.5, 50.5)
    assert d["p5"] == pytest.approx(5.95) and d["p95"] == pytest.approx(95.05)
    assert sum(b["count"] for b in d["buckets"]) == 100 and len(d["buckets"]) == 10
    assert d["buckets"][0] == {"count": 10.0, "left": 1.0, "right": 11.0}
    assert distribution([])["sum"] == "0"


def test_supervised_tuning_data_stats_shape(examples, tokenizer_of):
    lines = (examples / "chat_messages.jsonl").read_text().splitlines()
    convs = parse_lines(lines, Report())
    enc = ChatEncoder(tokenizer_of("tiny-llama"), "<|eot_id|>")
    encoded = [enc.encode(c, max_length=120, index=i) for i, c in enumerate(convs)]
    stats = supervised_tuning_data_stats(encoded, convs, epochs=3, steps=12, dropped=["line 9: example"])
    assert stats["tuningDatasetExampleCount"] == "10" and stats["tuningStepCount"] == "12"
    assert int(stats["totalBillableTokenCount"]) == 3 * sum(len(e) for e in encoded)
    assert int(stats["totalTuningCharacterCount"]) == sum(len(m.text) for c in convs for m in c.messages)
    truncated = [str(e.index) for e in encoded if e.truncated]
    assert truncated and stats["truncatedExampleIndices"] == truncated
    assert stats["totalTruncatedExampleCount"] == str(len(truncated))
    assert stats["userMessagePerExampleDistribution"]["max"] == 5.0
    assert int(stats["userOutputTokenDistribution"]["sum"]) == sum(e.num_target_tokens for e in encoded)
    # repeated Content, as the proto has it: the sample examples' messages, user then model
    assert [c["role"] for c in stats["userDatasetExamples"][:2]] == ["user", "model"]
    assert all(set(c) == {"role", "parts"} for c in stats["userDatasetExamples"])
    assert stats["droppedExampleReasons"] == ["line 9: example"]
    json.dumps(stats)  # wire-ready


def test_gs_uris_map_under_the_bucket_root(settings):
    root = settings.resolved_bucket_root
    assert storage.local_path("gs://b/a/c.jsonl", settings) == root / "b" / "a" / "c.jsonl"
    assert storage.local_path("file:///tmp/x.jsonl", settings).as_posix() == "/tmp/x.jsonl"
    with pytest.raises(storage.StorageError, match="'..'"):
        storage.local_path("gs://b/../../etc/passwd", settings)
    with pytest.raises(storage.StorageError, match="bucket name"):
        storage.local_path("gs:///x", settings)
    with pytest.raises(storage.StorageError, match="not found"):
        storage.fetch("gs://b/missing.jsonl", settings)


def test_real_gcs_without_backend_is_a_clear_error(settings):
    from tuneforge.settings import Settings

    s = Settings(home=settings.home, real_gcs=True)
    assert storage.is_remote("gs://b/x", s)
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        with pytest.raises(storage.StorageError, match="pip install gcsfs"):
            storage.fetch("gs://b/x.jsonl", s)


def test_no_server_path_reaches_a_client(settings):
    root = settings.resolved_bucket_root
    with pytest.raises(storage.StorageError) as missing:
        storage.fetch("gs://b/missing.jsonl", settings)
    assert str(root) not in str(missing.value) and "gs://b/missing.jsonl" in str(missing.value)
    text = storage.client_text(f"cannot open {root}/b/x/step-3 (cache {settings.home}/cache/y)", settings)
    assert text == "cannot open gs://b/x/step-3 (cache <home>/cache/y)"


@pytest.mark.parametrize(
    "uri", ["gs://b/a\x00b.jsonl", "gs://b/" + "x" * 256, "gs://b/\ud800.jsonl", "gs://b/tab\there.jsonl"]
)
def test_client_uris_refuse_nul_control_characters_surrogates_and_overlong_parts(settings, uri):
    with pytest.raises(storage.StorageError):
        storage.check_client_uri(uri, "field", settings, access=None)


def test_a_report_lists_a_bounded_number_of_problems_and_counts_the_rest():
    from tuneforge.data.report import LISTED

    report = Report(source="f")
    for i in range(LISTED * 5):
        report.warning("blank line skipped", i + 1)
    report.error("bad", 1)
    assert len(report.problems) == LISTED + 1 and report.count("warning") == LISTED * 5
    assert len(report.warnings) == LISTED + 1 and "400 more" in report.warnings[-1].message
    assert not report.ok
