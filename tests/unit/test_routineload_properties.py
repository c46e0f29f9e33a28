import json
from datetime import UTC, datetime

import pytest

from fe.routineload.properties import (
    ALTER_JOB_KEYS,
    JOB_KEYS,
    MASKED,
    OFFSET_BEGINNING,
    OFFSET_END,
    JobProperties,
    KafkaSource,
    PropertyError,
    alter_job_properties,
    alter_kafka_source,
    alter_offsets,
    custom_properties_display,
    data_source_properties_display,
    job_properties_display,
    mask_custom_properties,
    parse_job_properties,
    parse_kafka_source,
    parse_offset,
    resolve_start_offset,
)

BASE_SRC = {"kafka_broker_list": "b1:9092", "kafka_topic": "users"}


def err(fn, *args) -> PropertyError:
    with pytest.raises(PropertyError) as ei:
        fn(*args)
    assert ei.value.code == "INVALID_ARGUMENT"
    return ei.value


# ---- job properties -------------------------------------------------------------------------------

def test_job_defaults():
    assert parse_job_properties({}) == JobProperties(
        desired_concurrent_number=3, max_batch_interval_s=10, max_batch_rows=200000,
        max_batch_size_bytes=104857600, max_error_number=0, max_filter_ratio=1.0, strict_mode=False,
        timezone="Asia/Shanghai", format="csv", jsonpaths=(), json_root="", strip_outer_array=False,
        column_separator=",", task_consume_second=None, task_timeout_second=None)


def test_job_all_properties_case_insensitive_keys():
    jp = parse_job_properties({
        "DESIRED_CONCURRENT_NUMBER": " 5 ", "Max_Batch_Interval": "20", "max_batch_rows": "1000",
        "max_batch_size": "1073741824", "max_error_number": "7", "max_filter_ratio": "0.25",
        "strict_mode": "TRUE", "timezone": "UTC", "format": "JSON",
        "jsonpaths": '["$.a", "$.b.c"]', "json_root": "$.data", "strip_outer_array": "true",
        "column_separator": "|", "task_consume_second": "3", "task_timeout_second": "15",
    })
    assert jp == JobProperties(5, 20, 1000, 1073741824, 7, 0.25, True, "UTC", "json", ("$.a", "$.b.c"),
                               "$.data", True, "|", 3, 15)


@pytest.mark.parametrize("key,value,message", [
    ("desired_concurrent_number", "0", "must be an integer >= 1"),
    ("desired_concurrent_number", "abc", "must be an integer >= 1"),
    ("desired_concurrent_number", "1.5", "must be an integer >= 1"),
    ("desired_concurrent_number", "", "must be an integer >= 1"),
    ("max_batch_interval", "0", "must be an integer >= 1"),
    ("max_batch_rows", "-1", "must be an integer >= 1"),
    ("max_batch_size", "0", "must be an integer between 1 and 1073741824"),
    ("max_batch_size", "1073741825", "must be an integer between 1 and 1073741824"),
    ("max_error_number", "-1", "must be an integer >= 0"),
    ("max_filter_ratio", "1.5", "must be a number between 0 and 1"),
    ("max_filter_ratio", "-0.1", "must be a number between 0 and 1"),
    ("max_filter_ratio", "nan", "must be a number between 0 and 1"),
    ("max_filter_ratio", "half", "must be a number between 0 and 1"),
    ("strict_mode", "yes", "must be true or false"),
    ("strip_outer_array", "1", "must be true or false"),
    ("timezone", "Mars/Olympus", "must be an IANA time zone name such as Asia/Shanghai or UTC"),
    ("timezone", "../etc/passwd", "must be an IANA time zone name such as Asia/Shanghai or UTC"),
    ("format", "avro", "must be csv or json"),
    ("column_separator", "", r"must not be empty (use e.g. ',' or \t or \x01)"),
    ("task_consume_second", "0", "must be an integer >= 1"),
    ("task_timeout_second", "x", "must be an integer >= 1"),
])
def test_job_invalid_values(key, value, message):
    e = err(parse_job_properties, {key: value})
    assert str(e) == f"invalid property '{key}' = '{value}': {message}"
    assert (e.prop, e.value) == (key, value)


def test_desired_concurrent_number_message_from_brief():
    assert str(err(parse_job_properties, {"desired_concurrent_number": "0"})) == (
        "invalid property 'desired_concurrent_number' = '0': must be an integer >= 1")


@pytest.mark.parametrize("value", ['["$.a",', '{"a": "$.a"}', '[]', '["a"]', '["$.a", 1]', '"$.a"'])
def test_jsonpaths_invalid(value):
    e = err(parse_job_properties, {"format": "json", "jsonpaths": value})
    assert str(e) == (f"invalid property 'jsonpaths' = '{value}': must be a JSON array of strings "
                      'starting with "$", e.g. ["$.k1","$.k2"]')


def test_json_root_must_be_a_path():
    e = err(parse_job_properties, {"format": "json", "json_root": "data"})
    assert str(e) == "invalid property 'json_root' = 'data': must be empty or a JSON path starting with \"$\""


@pytest.mark.parametrize("key,value", [("jsonpaths", '["$.a"]'), ("json_root", "$.x"), ("strip_outer_array", "true")])
def test_json_keys_refused_with_csv(key, value):
    e = err(parse_job_properties, {key: value})
    assert str(e) == f"invalid property '{key}' = '{value}': only allowed when format is json (format is csv)"


def test_task_timeout_must_exceed_consume():
    e = err(parse_job_properties, {"task_consume_second": "10", "task_timeout_second": "10"})
    assert str(e) == "invalid property 'task_timeout_second' = '10': must be greater than task_consume_second (10)"


def test_unknown_job_property():
    e = err(parse_job_properties, {"foo": "1"})
    assert str(e) == f"unknown property 'foo'; allowed: {', '.join(sorted(JOB_KEYS))}"
    assert e.prop == "foo"


def test_duplicate_key_differing_in_case():
    e = err(parse_job_properties, {"format": "csv", "FORMAT": "json"})
    assert str(e) == "property 'format' is given more than once"


@pytest.mark.parametrize("value,expected", [(",", ","), ("\\t", "\t"), ("\\n", "\n"), ("\\x01", "\x01"),
                                            ("\\x01\\x02", "\x01\x02"), ("||", "||")])
def test_column_separator(value, expected):
    assert parse_job_properties({"column_separator": value}).column_separator == expected


def test_job_to_dict_round_trip_is_json_able():
    jp = parse_job_properties({"format": "json", "jsonpaths": '["$.a"]', "task_consume_second": "2"})
    d = json.loads(json.dumps(jp.to_dict()))
    assert d["jsonpaths"] == ["$.a"]
    assert d["max_batch_interval_s"] == 10
    assert JobProperties.from_dict(d) == jp


def test_alter_job_properties_changes_only_given_keys():
    current = parse_job_properties({"format": "json", "desired_concurrent_number": "2"})
    new = alter_job_properties(current, {"desired_concurrent_number": "4", "max_batch_interval": "20",
                                         "jsonpaths": '["$.x"]'})
    assert new == JobProperties(desired_concurrent_number=4, max_batch_interval_s=20, format="json",
                                jsonpaths=("$.x",))
    assert current.desired_concurrent_number == 2


def test_alter_cannot_change_format():
    e = err(alter_job_properties, JobProperties(), {"format": "json"})
    assert str(e) == ("property 'format' cannot be changed by ALTER ROUTINE LOAD; "
                      f"allowed: {', '.join(sorted(ALTER_JOB_KEYS))}")


def test_alter_json_keys_on_csv_job_refused():
    e = err(alter_job_properties, JobProperties(), {"jsonpaths": '["$.a"]'})
    assert str(e) == "invalid property 'jsonpaths' = '[\"$.a\"]': only allowed when format is json (format is csv)"


def test_alter_validates_against_current_values():
    current = JobProperties(task_consume_second=5)
    e = err(alter_job_properties, current, {"task_timeout_second": "4"})
    assert str(e) == "invalid property 'task_timeout_second' = '4': must be greater than task_consume_second (5)"


def test_alter_unknown_key():
    e = err(alter_job_properties, JobProperties(), {"bar": "1"})
    assert str(e) == f"unknown property 'bar'; allowed: {', '.join(sorted(ALTER_JOB_KEYS))}"


# ---- Kafka source ---------------------------------------------------------------------------------

def test_kafka_minimal():
    src = parse_kafka_source({"KAFKA_BROKER_LIST": "b1:9092, b2:9093", "Kafka_Topic": "users"})
    assert src == KafkaSource(("b1:9092", "b2:9093"), "users", (), ())
    assert src.partitions == () and src.custom == {} and src.default_offset == OFFSET_END


@pytest.mark.parametrize("key", ["kafka_broker_list", "kafka_topic"])
def test_kafka_required(key):
    d = dict(BASE_SRC)
    del d[key]
    assert str(err(parse_kafka_source, d)) == f"missing required property '{key}'"
    d[key] = "  "
    assert str(err(parse_kafka_source, d)) == f"missing required property '{key}'"


@pytest.mark.parametrize("brokers,bad", [("b1", "b1"), ("b1:", "b1:"), ("b1:0", "b1:0"), ("b1:65536", "b1:65536"),
                                         (":9092", ":9092"), ("b/1:9092", "b/1:9092"), ("-b:9092", "-b:9092"), ("b1:90x", "b1:90x")])
def test_kafka_bad_broker(brokers, bad):
    e = err(parse_kafka_source, {**BASE_SRC, "kafka_broker_list": brokers})
    assert str(e) == (f"invalid property 'kafka_broker_list' = '{brokers}': '{bad}' is not host:port; "
                      "must be a comma-separated list of host:port with port 1..65535")


def test_kafka_empty_broker_entry():
    e = err(parse_kafka_source, {**BASE_SRC, "kafka_broker_list": "b1:9092,,b2:9092"})
    assert str(e) == ("invalid property 'kafka_broker_list' = 'b1:9092,,b2:9092': "
                      "must be a comma-separated list of host:port with port 1..65535")


@pytest.mark.parametrize("brokers", ["10.0.0.1:9092", "[::1]:9092", "pkc-n98pk.us-west-2.aws.confluent.cloud:9092",
                                     "localhost:1,localhost:65535", "kafka_1:9092"])
def test_kafka_good_brokers(brokers):
    assert parse_kafka_source({**BASE_SRC, "kafka_broker_list": brokers}).broker_list == tuple(brokers.split(","))


def test_kafka_bad_topic():
    e = err(parse_kafka_source, {**BASE_SRC, "kafka_topic": "a b"})
    assert str(e) == "invalid property 'kafka_topic' = 'a b': must be 1..249 characters of [A-Za-z0-9._-]"


def test_kafka_unknown_property():
    e = err(parse_kafka_source, {**BASE_SRC, "kafka_group": "g"})
    assert str(e) == ("unknown property 'kafka_group'; allowed: kafka_broker_list, kafka_default_offsets, "
                      "kafka_offsets, kafka_partitions, kafka_topic, property.*")


def test_kafka_partitions_default_to_offset_end():
    src = parse_kafka_source({**BASE_SRC, "kafka_partitions": "0, 1,2"})
    assert src.partition_offsets == ((0, OFFSET_END), (1, OFFSET_END), (2, OFFSET_END))
    assert src.partitions == (0, 1, 2)


def test_kafka_partitions_take_default_offsets():
    src = parse_kafka_source({**BASE_SRC, "kafka_partitions": "0,1",
                              "property.kafka_default_offsets": "offset_beginning"})
    assert src.partition_offsets == ((0, OFFSET_BEGINNING), (1, OFFSET_BEGINNING))
    assert src.custom == {"kafka_default_offsets": "OFFSET_BEGINNING"}


def test_kafka_offsets_per_partition():
    src = parse_kafka_source({**BASE_SRC, "kafka_partitions": "0,1,2,3",
                              "kafka_offsets": "0,OFFSET_BEGINNING,OFFSET_END,123"})
    assert src.partition_offsets == ((0, 0), (1, OFFSET_BEGINNING), (2, OFFSET_END), (3, 123))


def test_kafka_single_offset_for_several_partitions_is_refused():
    e = err(parse_kafka_source, {**BASE_SRC, "kafka_partitions": "4,5", "kafka_offsets": "100"})
    assert str(e) == ("invalid property 'kafka_offsets' = '100': Partitions number should be equals to offsets "
                      "number: kafka_partitions names 2 (4,5) and kafka_offsets gives 1; give one offset per "
                      "partition, in the same order")


def test_kafka_offsets_count_mismatch():
    e = err(parse_kafka_source, {**BASE_SRC, "kafka_partitions": "0,1,2", "kafka_offsets": "1,2"})
    assert str(e) == ("invalid property 'kafka_offsets' = '1,2': Partitions number should be equals to offsets "
                      "number: kafka_partitions names 3 (0,1,2) and kafka_offsets gives 2; give one offset per "
                      "partition, in the same order")


def test_kafka_offsets_without_partitions():
    e = err(parse_kafka_source, {**BASE_SRC, "kafka_offsets": "1"})
    assert str(e) == "invalid property 'kafka_offsets' = '1': needs kafka_partitions"


@pytest.mark.parametrize("value", ["-1", "x", "2024-01-01 00:00:00"])
def test_kafka_bad_offset(value):
    e = err(parse_kafka_source, {**BASE_SRC, "kafka_partitions": "0", "kafka_offsets": value})
    assert str(e) == f"invalid property 'kafka_offsets' = '{value}': must be an offset >= 0, OFFSET_BEGINNING or OFFSET_END"


@pytest.mark.parametrize("value", ["0,-1", "a", "0,0", "", "1.0"])
def test_kafka_bad_partitions(value):
    e = err(parse_kafka_source, {**BASE_SRC, "kafka_partitions": value})
    expected = "partition ids must not repeat" if value == "0,0" else "must be comma-separated partition ids >= 0, e.g. 0,1,2"
    assert str(e) == f"invalid property 'kafka_partitions' = '{value}': {expected}"


@pytest.mark.parametrize("key", ["property.kafka_default_offsets", "kafka_default_offsets"])
def test_default_offsets_datetime(key):
    src = parse_kafka_source({**BASE_SRC, key: "2025-11-20 10:00:00", "kafka_partitions": "0"})
    assert src.default_offset == "2025-11-20 10:00:00"
    assert src.partition_offsets == ((0, "2025-11-20 10:00:00"),)


def test_default_offsets_bad():
    e = err(parse_kafka_source, {**BASE_SRC, "property.kafka_default_offsets": "2025-13-01 00:00:00"})
    assert str(e) == ("invalid property 'property.kafka_default_offsets' = '2025-13-01 00:00:00': "
                      "must be OFFSET_BEGINNING, OFFSET_END or a datetime 'YYYY-MM-DD HH:MM:SS'")


def test_custom_properties_pass_through_and_normalize():
    src = parse_kafka_source({**BASE_SRC, "property.security.protocol": "sasl_ssl",
                              "property.sasl.mechanism": "scram-sha-512", "property.sasl.username": "u",
                              "property.sasl.password": "PF1L/q8+x=", "property.client.id": "c1",
                              "property.group.id": "g1"})
    assert src.custom == {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                          "sasl.username": "u", "sasl.password": "PF1L/q8+x=", "client.id": "c1",
                          "group.id": "g1"}
    assert [k for k, _ in src.custom_properties] == sorted(src.custom)


def test_bad_security_protocol():
    e = err(parse_kafka_source, {**BASE_SRC, "property.security.protocol": "TLS"})
    assert str(e) == ("invalid property 'property.security.protocol' = 'TLS': "
                      "must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL")


def test_bad_sasl_mechanism():
    e = err(parse_kafka_source, {**BASE_SRC, "property.sasl.mechanism": "GSSAPI"})
    assert str(e) == ("invalid property 'property.sasl.mechanism' = 'GSSAPI': "
                      "must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512")


def test_empty_custom_property_name():
    e = err(parse_kafka_source, {**BASE_SRC, "property.": "x"})
    assert str(e) == "invalid property 'property.': the name after 'property.' is empty"


def test_kafka_to_dict_round_trip_is_json_able():
    src = parse_kafka_source({**BASE_SRC, "kafka_partitions": "0,1", "kafka_offsets": "5,OFFSET_END",
                              "property.sasl.password": "p"})
    d = json.loads(json.dumps(src.to_dict()))
    assert d == {"broker_list": ["b1:9092"], "topic": "users", "partition_offsets": [[0, 5], [1, "OFFSET_END"]],
                 "custom_properties": {"sasl.password": "p"}}
    assert KafkaSource.from_dict(d) == src


# ---- ALTER of the Kafka source -------------------------------------------------------------------

@pytest.mark.parametrize("key", ["kafka_topic", "kafka_broker_list"])
def test_alter_cannot_change_topic_or_brokers(key):
    e = err(alter_kafka_source, parse_kafka_source(BASE_SRC), {key: "x:1"})
    assert str(e) == (f"property '{key}' cannot be changed by ALTER ROUTINE LOAD; allowed: "
                      "kafka_default_offsets, kafka_offsets, kafka_partitions, property.*")


def test_alter_unknown_kafka_key():
    e = err(alter_kafka_source, parse_kafka_source(BASE_SRC), {"foo": "1"})
    assert str(e) == ("unknown property 'foo'; allowed: kafka_default_offsets, kafka_offsets, "
                      "kafka_partitions, property.*")


def test_alter_partitions_and_offsets():
    current = parse_kafka_source({**BASE_SRC, "kafka_partitions": "0,1"})
    new = alter_kafka_source(current, {"kafka_partitions": "0,1,2", "kafka_offsets": "10,20,OFFSET_BEGINNING"})
    assert new.partition_offsets == ((0, 10), (1, 20), (2, OFFSET_BEGINNING))
    assert (new.topic, new.broker_list) == (current.topic, current.broker_list)


def test_alter_offsets_alone_apply_to_current_partitions():
    current = parse_kafka_source({**BASE_SRC, "kafka_partitions": "3,4"})
    assert alter_offsets(current, {"kafka_offsets": "7,9"}) == ((3, 7), (4, 9))
    assert alter_kafka_source(current, {"kafka_offsets": "7,8"}).partition_offsets == ((3, 7), (4, 8))
    e = err(alter_offsets, current, {"kafka_offsets": "7"})
    assert "the job's kafka_partitions names 2 (3,4) and kafka_offsets gives 1" in str(e)


def test_alter_offsets_alone_without_pinned_partitions():
    e = err(alter_kafka_source, parse_kafka_source(BASE_SRC), {"kafka_offsets": "7"})
    assert str(e) == "invalid property 'kafka_offsets' = '7': needs kafka_partitions"


def test_alter_partitions_alone_use_default_offsets():
    current = parse_kafka_source({**BASE_SRC, "property.kafka_default_offsets": "OFFSET_BEGINNING"})
    assert alter_offsets(current, {"kafka_partitions": "1"}) == ((1, OFFSET_BEGINNING),)
    assert alter_offsets(current, {"kafka_partitions": "1", "property.kafka_default_offsets": "OFFSET_END"}) == (
        (1, OFFSET_END),)


def test_alter_custom_properties_merge_and_keep_pins():
    current = parse_kafka_source({**BASE_SRC, "kafka_partitions": "0", "kafka_offsets": "9",
                                  "property.sasl.username": "u", "property.sasl.password": "old"})
    new = alter_kafka_source(current, {"property.sasl.password": "new", "property.client.id": "c"})
    assert new.custom == {"sasl.username": "u", "sasl.password": "new", "client.id": "c"}
    assert new.partition_offsets == ((0, 9),)
    assert alter_offsets(current, {"property.client.id": "c"}) == ()


def test_alter_validates_custom_properties():
    e = err(alter_kafka_source, parse_kafka_source(BASE_SRC), {"property.security.protocol": "nope"})
    assert str(e) == ("invalid property 'property.security.protocol' = 'nope': "
                      "must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL")


# ---- offsets ---------------------------------------------------------------------------------------

def test_parse_offset():
    assert parse_offset("p", "12") == 12
    assert parse_offset("p", " offset_end ") == OFFSET_END
    assert parse_offset("p", "2025-01-02 03:04:05", allow_datetime=True) == "2025-01-02 03:04:05"


def _never(ms: int) -> int:
    raise AssertionError("offset_for_time must not be called")


def test_resolve_start_offset_fixed_specs():
    assert resolve_start_offset(OFFSET_BEGINNING, 5, 50, _never) == 5
    assert resolve_start_offset(OFFSET_END, 5, 50, _never) == 50
    assert resolve_start_offset(17, 5, 50, _never) == 17
    assert resolve_start_offset(999, 5, 50, _never) == 999  # range check is the caller's


def test_resolve_start_offset_datetime_in_job_timezone():
    asked: list[int] = []

    def lookup(ms: int) -> int:
        asked.append(ms)
        return 33

    assert resolve_start_offset("2025-01-01 08:00:00", 0, 100, lookup, "Asia/Shanghai") == 33
    assert asked == [int(datetime(2025, 1, 1, 0, 0, tzinfo=UTC).timestamp() * 1000)]
    aware = datetime(2025, 1, 1, 0, 0, tzinfo=UTC)
    assert resolve_start_offset(aware, 0, 100, lookup, "UTC") == 33
    assert asked[1] == asked[0]


def test_resolve_start_offset_datetime_after_last_message_starts_at_end():
    assert resolve_start_offset("2030-01-01 00:00:00", 0, 100, lambda ms: None, "UTC") == 100


# ---- SHOW ROUTINE LOAD ------------------------------------------------------------------------------

def test_job_properties_display_keys_as_starrocks():
    jp = parse_job_properties({"format": "json", "jsonpaths": '["$.commodity_id", "$.price"]',
                               "max_batch_interval": "20"})
    shown = json.loads(job_properties_display(jp, column_to_column_expr="a,b", current_task_concurrent_num=3))
    assert shown == {
        "partitions": "*", "partial_update": "false", "columnToColumnExpr": "a,b", "maxBatchIntervalS": "20",
        "whereExpr": "*", "dataFormat": "json", "timezone": "Asia/Shanghai", "format": "json", "json_root": "",
        "strict_mode": "false", "jsonpaths": '["$.commodity_id","$.price"]', "desireTaskConcurrentNum": "3",
        "maxErrorNum": "0", "maxFilterRatio": "1.0", "strip_outer_array": "false",
        "currentTaskConcurrentNum": "3", "maxBatchRows": "200000", "maxBatchSizeBytes": "104857600",
        "columnSeparator": ",", "taskConsumeSecond": "-1", "taskTimeoutSecond": "-1",
    }


def test_job_properties_display_is_compact_json_with_escaped_jsonpaths():
    text = job_properties_display(parse_job_properties({"format": "json", "jsonpaths": '["$.a"]'}))
    assert '"jsonpaths":"[\\"$.a\\"]"' in text
    assert text.startswith('{"partitions":"*","partial_update":"false",')


def test_data_source_properties_display():
    src = parse_kafka_source({"kafka_broker_list": "b1:9092,b2:9092", "kafka_topic": "ordertest2",
                              "kafka_partitions": "0,1"})
    assert data_source_properties_display(src) == (
        '{"topic":"ordertest2","currentKafkaPartitions":"0,1","brokerList":"b1:9092,b2:9092"}')
    assert json.loads(data_source_properties_display(src, [0, 1, 2, 3, 4]))["currentKafkaPartitions"] == "0,1,2,3,4"


def test_custom_properties_display_masks_secrets():
    src = parse_kafka_source({**BASE_SRC, "property.security.protocol": "SASL_SSL", "property.sasl.mechanism": "PLAIN",
                              "property.sasl.username": "HALNAFT2X4IKVWYY", "property.sasl.password": "PF1L6aZ5k",
                              "property.ssl.key.password": "k", "property.kafka_default_offsets": "OFFSET_BEGINNING"})
    assert json.loads(custom_properties_display(src)) == {
        "kafka_default_offsets": "OFFSET_BEGINNING", "sasl.mechanism": "PLAIN", "sasl.password": MASKED,
        "sasl.username": MASKED, "security.protocol": "SASL_SSL", "ssl.key.password": MASKED}
    assert "PF1L6aZ5k" not in custom_properties_display(src)
    assert MASKED == "******"


def test_mask_custom_properties_any_password_key():
    assert mask_custom_properties({"ssl.keystore.password": "a", "My.Password.X": "b", "client.id": "c"}) == {
        "ssl.keystore.password": MASKED, "My.Password.X": MASKED, "client.id": "c"}
