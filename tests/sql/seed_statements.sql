-- The SQL statements of the seeds (/work/shared/seeds, issue 16 part 4), in the order they run.
--
-- Read by tests/integration/test_sql_seeds.py (runs them through pymysql, and some through
-- Debian's mysql client) and checked against the seed files by tests/unit/test_sql_seed_fixture.py.
--
-- Format: an entry starts at a `-- @id:` line; its other `-- @` lines describe it; every other
-- line up to the next `-- @id:` is the statement text, exactly as a user types it into the mysql
-- client (a trailing `;` or `\G` is the client's delimiter: it is not sent to the server).
--
--   @id: <name>            the test case id
--   @seed: <file>:<line>   where the statement is in the seed (for setup/derived: what it serves)
--   @kind: seed            the seed's statement, verbatim but for the @adjust lines
--          synopsis        a syntax synopsis of the seed (placeholders, [optional] parts) made concrete
--          derived         the seed's prose describes the statement without showing its text
--          setup           not in the seeds: creates the database/table/job a seed example needs
--          check           not in the seeds: checks that the statements above had their effect
--          excluded        not run; @reason says why (the text is kept verbatim for the record)
--   @adjust: <new> <= <original>    one adjustment of the seed's text (names, ids, broker)
--   @columns: A, B, ...    the result columns the seed shows, in order (the statement's
--                          cursor.description must equal them)
--   @columns-shown: <file>:<line>   the header line (| A | B |) or the first field of the \G
--                          listing those columns come from, when not at @seed
--   @error: <code> [text]  the statement must fail with this MySQL error code (and text)
--   @capture: VAR = Column [where Column2 = value]   keep a value of the result's first
--                          (matching) row as ${VAR} for later statements
--   @poll: <value>         run again until the first column of the first row is <value> (30 s;
--                          an error answer is polled again too)
--   @value: <value>        the first column of the first row is <value>
--   @mysql-client: [opts]  also run it through /usr/bin/mysql -e "...", options such as -Ddb
--   @note: ...             anything else worth knowing
--
-- Placeholders: ${BROKER} is the embedded Kafka broker (host:port); the rest come from @capture.
-- The Kafka topics (users, ordertest2, events) and their messages are made by the test: the
-- seeds create topics and produce messages outside SQL.


-- ==================================================================== setup for seeds 000 and 001
-- Seed 001 shows SHOW ROUTINE LOAD / PAUSE / RESUME / STOP of a job `example_tbl2_ordertest2` on
-- `example_tbl2` in `example_db` (its prompt is `MySQL [example_db]>`) but creates a different
-- job; these statements create the job its SHOW output describes (JobProperties, DataSourceProperties).

-- @id: setup-create-database-example_db
-- @seed: 001_631261746442aac8.txt:138
-- @kind: setup
CREATE DATABASE example_db;

-- @id: setup-use-example_db
-- @seed: 001_631261746442aac8.txt:138
-- @kind: setup
USE example_db;

-- @id: setup-create-table-example_tbl2
-- @seed: 001_631261746442aac8.txt:150
-- @kind: setup
-- @note: the columns of the job's columnToColumnExpr; StarRocks' example_tbl2 (an AGGREGATE KEY table
-- @note: with SUM(price)) made a DUPLICATE KEY table
CREATE TABLE example_tbl2 (
    commodity_id VARCHAR(26),
    customer_name VARCHAR(26),
    country VARCHAR(26),
    pay_time BIGINT,
    pay_dt DATE,
    price DOUBLE
)
DUPLICATE KEY(commodity_id)
DISTRIBUTED BY HASH(commodity_id) BUCKETS 4
PROPERTIES ("replication_num" = "3");

-- @id: setup-create-routine-load-example_tbl2_ordertest2
-- @seed: 001_631261746442aac8.txt:150
-- @kind: setup
-- @note: JobProperties, DataSourceProperties and CustomProperties of the seed's SHOW output, but
-- @note: max_batch_interval 1 (the seed: 20) so that the test is quick, and no SASL (the embedded
-- @note: broker is plaintext); the test produces 2 messages to partition 0 of ordertest2 (5 partitions)
CREATE ROUTINE LOAD example_db.example_tbl2_ordertest2 ON example_tbl2
COLUMNS(commodity_id, customer_name, country, pay_time, pay_dt=from_unixtime(`pay_time`, '%Y%m%d'), price)
PROPERTIES (
    "desired_concurrent_number" = "3",
    "format" = "json",
    "jsonpaths" = "[\"$.commodity_id\",\"$.customer_name\",\"$.country\",\"$.pay_time\",\"$.price\"]",
    "max_batch_interval" = "1",
    "timezone" = "Asia/Shanghai"
)
FROM KAFKA (
    "kafka_broker_list" = "${BROKER}",
    "kafka_topic" = "ordertest2",
    "property.kafka_default_offsets" = "OFFSET_BEGINNING"
);

-- @id: check-example_tbl2-loaded
-- @seed: 001_631261746442aac8.txt:153
-- @kind: check
-- @poll: 2
-- @note: the seed's Statistic: loadedRows 2
SELECT count(*) FROM example_tbl2;


-- ==================================================================== 000: Routine Load FAQ

-- @id: 000-show-routine-load
-- @seed: 000_4bb872322e6562f6.txt:60
-- @kind: seed
-- @columns: Id, Name, CreateTime, PauseTime, EndTime, DbName, TableName, State, DataSourceType, CurrentTaskNum, JobProperties, DataSourceProperties, CustomProperties, Statistic, Progress, ReasonOfStateChanged, ErrorLogUrls, OtherMsg
-- @columns-shown: 001_631261746442aac8.txt:140
-- @note: "You can execute SHOW ROUTINE LOAD and check ... Progress" (also at lines 73 and 75): every
-- @note: job of the current database, example_db; the columns are seed 001's \G listing
SHOW ROUTINE LOAD

-- @id: 000-admin-set-max_routine_load_task_concurrent_num
-- @seed: 000_4bb872322e6562f6.txt:28
-- @kind: derived
-- @note: "max_routine_load_task_concurrent_num ... is an FE dynamic parameter" (the configuration
-- @note: method of the linked page: ADMIN SET FRONTEND CONFIG)
ADMIN SET FRONTEND CONFIG ("max_routine_load_task_concurrent_num" = "5");

-- @id: 000-admin-set-routine_load_task_consume_second
-- @seed: 000_4bb872322e6562f6.txt:42
-- @kind: derived
-- @note: "max_routine_load_batch_size ... routine_load_task_consume_second ... are FE dynamic parameters"
ADMIN SET FRONTEND CONFIG ("routine_load_task_consume_second" = "1");

-- @id: 000-admin-show-max_routine_load_batch_size
-- @seed: 000_4bb872322e6562f6.txt:42
-- @kind: derived
ADMIN SHOW FRONTEND CONFIG LIKE 'max_routine_load_batch_size';

-- @id: 000-pause-before-alter
-- @seed: 000_4bb872322e6562f6.txt:27
-- @kind: derived
-- @note: a job is altered while PAUSED (seed 001 line 232)
PAUSE ROUTINE LOAD FOR example_tbl2_ordertest2;

-- @id: 000-alter-desired_concurrent_number
-- @seed: 000_4bb872322e6562f6.txt:27
-- @kind: derived
-- @note: "If you have already created a Routine Load job, you need to use ALTER ROUTINE LOAD to modify
-- @note: this parameter [desired_concurrent_number]"; "set desired_concurrent_number to 5" (line 33)
ALTER ROUTINE LOAD FOR example_tbl2_ordertest2 PROPERTIES ("desired_concurrent_number" = "5");

-- @id: 000-alter-max_error_number
-- @seed: 000_4bb872322e6562f6.txt:73
-- @kind: derived
-- @note: "use ALTER ROUTINE LOAD to increase the threshold [max_error_number]"
ALTER ROUTINE LOAD FOR example_tbl2_ordertest2 PROPERTIES ("max_error_number" = "1000");

-- @id: 000-resume-after-alter
-- @seed: 000_4bb872322e6562f6.txt:73
-- @kind: derived
-- @note: "After modifying the threshold, you can use RESUME ROUTINE LOAD to resume the paused load job"
RESUME ROUTINE LOAD FOR example_tbl2_ordertest2;

-- @id: 000-excluded-parallelism-formula
-- @seed: 000_4bb872322e6562f6.txt:18
-- @kind: excluded
-- @reason: a formula in a Plaintext block, not a statement
min(alive_be_number, partition_number, desired_concurrent_number, max_routine_load_task_concurrent_num)


-- ==================================================================== 001: Confluent Cloud

-- @id: setup-create-database-mydatabase
-- @seed: 001_631261746442aac8.txt:55
-- @kind: setup
-- @note: the job below is mydatabase.tutorials_users_test2 ON myusers2: myusers2 is in mydatabase
CREATE DATABASE mydatabase;

-- @id: setup-use-mydatabase
-- @seed: 001_631261746442aac8.txt:41
-- @kind: setup
USE mydatabase;

-- @id: 001-create-table-myusers2
-- @seed: 001_631261746442aac8.txt:41
-- @kind: seed
-- @note: expression partitioning (PARTITION BY date_trunc) and no DISTRIBUTED BY (StarRocks 3.x
-- @note: picks the bucketing). NOT RUN: the catalog holds range partitions only, and expression
-- @note: partitioning creates partitions as rows arrive; refused with a clear 1064 (the fallback
-- @note: below creates the table with the seed's columns)
-- @error: 1064 expression partitioning is not supported
CREATE TABLE myusers2 (
    userid VARCHAR(50),
    regionid VARCHAR(50),
    gender VARCHAR(50),
    dt DATETIME
)
PARTITION BY date_trunc('day', dt);

-- @id: setup-create-table-myusers2-if-not-exists
-- @seed: 001_631261746442aac8.txt:41
-- @kind: setup
-- @note: the seed's table without its expression partitioning: the job below then runs even where
-- @note: the seed's CREATE TABLE does not (with it, this does nothing)
CREATE TABLE IF NOT EXISTS myusers2 (
    userid VARCHAR(50),
    regionid VARCHAR(50),
    gender VARCHAR(50),
    dt DATETIME
)
DUPLICATE KEY(userid)
DISTRIBUTED BY HASH(userid) BUCKETS 1
PROPERTIES ("replication_num" = "3");

-- @id: 001-create-routine-load-tutorials_users_test2
-- @seed: 001_631261746442aac8.txt:55
-- @kind: seed
-- @adjust: ${BROKER} <= pkc-n98pk.us-west-2.aws.confluent.cloud:9092
-- @note: the SASL_SSL properties are kept: the job is created (and shown with the password masked)
-- @note: though the embedded broker speaks plaintext
CREATE ROUTINE LOAD mydatabase.tutorials_users_test2 ON myusers2
COLUMNS(userid, regionid, gender, registertime, dt=from_unixtime(registertime/1000))
PROPERTIES (
    'format' ='json',
    'jsonpaths' = '["$.userid","$.regionid","$.gender", "$.registertime"]'
)
FROM KAFKA (
    'kafka_broker_list' = '${BROKER}',
    'kafka_topic' = 'users',
    'property.kafka_default_offsets' = 'OFFSET_BEGINNING',
    'property.security.protocol' = 'SASL_SSL',
    'property.sasl.mechanism' = 'PLAIN',
    'property.sasl.username' = 'HALNAFT2X4IKVWYY',
    'property.sasl.password' = 'PF1L6aZ5kEXG5/q8heq5onDmLs6BeekC9X3pFWyuc+AZxw5DYUqBihJjXhKjFJw/'
);

-- @id: 001-excluded-sasl-properties
-- @seed: 001_631261746442aac8.txt:90
-- @kind: excluded
-- @reason: a fragment (the SASL properties of a FROM KAFKA clause), not a statement; the CREATE
-- @reason: ROUTINE LOAD above has them
"property.security.protocol"="SASL_SSL",
"property.sasl.mechanism"="PLAIN",
"property.sasl.username"="",
"property.sasl.password"=""

-- @id: setup-use-example_db-again
-- @seed: 001_631261746442aac8.txt:138
-- @kind: setup
-- @note: the seed's prompt: MySQL [example_db]>
USE example_db;

-- @id: 001-show-routine-load-for-example_tbl2_ordertest2
-- @seed: 001_631261746442aac8.txt:138
-- @kind: seed
-- @columns: Id, Name, CreateTime, PauseTime, EndTime, DbName, TableName, State, DataSourceType, CurrentTaskNum, JobProperties, DataSourceProperties, CustomProperties, Statistic, Progress, ReasonOfStateChanged, ErrorLogUrls, OtherMsg
-- @columns-shown: 001_631261746442aac8.txt:140
-- @mysql-client: -Dexample_db
SHOW ROUTINE LOAD FOR example_tbl2_ordertest2 \G

-- @id: 001-show-routine-load-task-example_tbl2_ordertest2
-- @seed: 001_631261746442aac8.txt:169
-- @kind: seed
-- @columns: TaskId, TxnId, TxnStatus, JobId, CreateTime, LastScheduledTime, ExecuteStartTime, Timeout, BeId, DataSourceProperties, Message
-- @columns-shown: 001_631261746442aac8.txt:171
-- @mysql-client: -Dexample_db
SHOW ROUTINE LOAD TASK WHERE JobName = "example_tbl2_ordertest2" \G

-- @id: 001-pause-routine-load
-- @seed: 001_631261746442aac8.txt:217
-- @kind: seed
PAUSE ROUTINE LOAD FOR example_tbl2_ordertest2;

-- @id: 001-resume-routine-load
-- @seed: 001_631261746442aac8.txt:227
-- @kind: seed
RESUME ROUTINE LOAD FOR example_tbl2_ordertest2;

-- @id: 001-stop-routine-load
-- @seed: 001_631261746442aac8.txt:241
-- @kind: seed
STOP ROUTINE LOAD FOR example_tbl2_ordertest2;

-- @id: 001-excluded-ssl-verification-property
-- @seed: 001_631261746442aac8.txt:277
-- @kind: excluded
-- @reason: a fragment (one property of a FROM KAFKA clause), not a statement
"property.enable.ssl.certificate.verification"="false"

-- @id: 001-excluded-ssl-ca-location-property
-- @seed: 001_631261746442aac8.txt:288
-- @kind: excluded
-- @reason: a fragment (one property of a FROM KAFKA clause), not a statement
"property.ssl.ca.location"="/etc/ssl/certs/ca-bundle.crt"


-- ==================================================================== 002: Doris Routine Load blog

-- @id: setup-create-database-app
-- @seed: 002_45ef3c65b6490bb7.txt:60
-- @kind: setup
-- @note: the job is app.rt_events_rl ON rt_events: rt_events is in app
CREATE DATABASE app;

-- @id: setup-use-app
-- @seed: 002_45ef3c65b6490bb7.txt:51
-- @kind: setup
USE app;

-- @id: 002-create-table-rt_events
-- @seed: 002_45ef3c65b6490bb7.txt:51
-- @kind: seed
CREATE TABLE rt_events (
event_time DATETIME,
user_id BIGINT,
action VARCHAR(32),
attr_json JSON
)
DUPLICATE KEY(event_time, user_id)
DISTRIBUTED BY HASH(user_id) BUCKETS 32;

-- @id: 002-create-routine-load-rt_events_rl
-- @seed: 002_45ef3c65b6490bb7.txt:60
-- @kind: seed
-- @adjust: ${BROKER} <= broker1:9092,broker2:9092
-- @note: Doris' form: kafka_default_offsets without property., max_batch_size, SQL comments
-- @note: inside PROPERTIES
CREATE ROUTINE LOAD app.rt_events_rl ON rt_events
PROPERTIES (
"desired_concurrent_number" = "8",
"max_batch_interval" = "10",
"max_batch_rows" = "500000",
"max_batch_size" = "536870912", -- 512MB
"format" = "json",
"jsonpaths" = "[\"$.event_time\",\"$.user_id\",\"$.action\",\"$\"]",
"strict_mode" = "false" -- tolerate minor type drift
)
FROM KAFKA (
"kafka_broker_list" = "${BROKER}",
"kafka_topic" = "events",
"kafka_default_offsets" = "OFFSET_BEGINNING" -- or a timestamp
);

-- @id: check-rt_events-loaded
-- @seed: 002_45ef3c65b6490bb7.txt:60
-- @kind: check
-- @poll: 3
-- @note: the test produces 3 events to the topic events (3 partitions) before the job starts
SELECT count(*) FROM rt_events;

-- @id: 002-show-routine-load-for-app.rt_events_rl
-- @seed: 002_45ef3c65b6490bb7.txt:78
-- @kind: seed
-- @columns: Id, Name, CreateTime, PauseTime, EndTime, DbName, TableName, State, DataSourceType, CurrentTaskNum, JobProperties, DataSourceProperties, CustomProperties, Statistic, Progress, ReasonOfStateChanged, ErrorLogUrls, OtherMsg
-- @columns-shown: 001_631261746442aac8.txt:140
-- @mysql-client:
-- @note: seed 002 shows no output; the columns are seed 001's listing of the same statement
SHOW ROUTINE LOAD FOR app.rt_events_rl\G

-- @id: 002-show-routine-load-task-for-app.rt_events_rl
-- @seed: 002_45ef3c65b6490bb7.txt:78
-- @kind: seed
-- @columns: TaskId, TxnId, TxnStatus, JobId, CreateTime, LastScheduledTime, ExecuteStartTime, Timeout, BeId, DataSourceProperties, Message
-- @columns-shown: 001_631261746442aac8.txt:171
-- @note: SHOW ROUTINE LOAD TASK FOR job is the blog's form (StarRocks: WHERE JobName = '...')
SHOW ROUTINE LOAD TASK FOR app.rt_events_rl\G

-- @id: 002-pause-routine-load
-- @seed: 002_45ef3c65b6490bb7.txt:81
-- @kind: seed
-- @note: run before the two ALTERs of lines 79-80: only a PAUSED job can be altered (seed 001 line 232)
PAUSE ROUTINE LOAD FOR app.rt_events_rl;

-- @id: 002-alter-routine-load-kafka_offsets
-- @seed: 002_45ef3c65b6490bb7.txt:79
-- @kind: seed
-- @error: 1064 kafka_offsets
-- @note: "partition:offset" pairs are the blog's own: StarRocks and Doris take
-- @note: "kafka_partitions" = "0,1,2", "kafka_offsets" = "12345,67890,54321" and reject this
ALTER ROUTINE LOAD app.rt_events_rl FROM KAFKA ("kafka_offsets" = "0:12345,1:67890,2:54321");

-- @id: 002-alter-routine-load-properties
-- @seed: 002_45ef3c65b6490bb7.txt:80
-- @kind: seed
ALTER ROUTINE LOAD app.rt_events_rl PROPERTIES ("desired_concurrent_number"="4","max_batch_interval"="20");

-- @id: 002-resume-routine-load
-- @seed: 002_45ef3c65b6490bb7.txt:81
-- @kind: seed
RESUME ROUTINE LOAD FOR app.rt_events_rl;

-- @id: 002-stop-routine-load
-- @seed: 002_45ef3c65b6490bb7.txt:81
-- @kind: seed
STOP ROUTINE LOAD FOR app.rt_events_rl;

-- @id: 002-excluded-default-offsets-timestamp
-- @seed: 002_45ef3c65b6490bb7.txt:27
-- @kind: excluded
-- @reason: a fragment (one property of CREATE ROUTINE LOAD in a table cell), not a statement
kafka_default_offsets = '2025-11-20 10:00:00'

-- @id: 002-excluded-recreate-with-timestamp
-- @seed: 002_45ef3c65b6490bb7.txt:79
-- @kind: excluded
-- @reason: a fragment ("Or recreate with ..." one property), not a statement
kafka_default_offsets='2025-11-19 10:00:00'


-- ==================================================================== 003: Manage replica
-- Seed 003 names tables tbl (partitions p1, p2) and tbl1 and never creates them; its SHOW TABLET
-- output names the database test.

-- @id: setup-create-database-test
-- @seed: 003_d0befc1bf3232b7f.txt:214
-- @kind: setup
CREATE DATABASE test;

-- @id: setup-use-test
-- @seed: 003_d0befc1bf3232b7f.txt:214
-- @kind: setup
USE test;

-- @id: setup-create-table-tbl
-- @seed: 003_d0befc1bf3232b7f.txt:132
-- @kind: setup
-- @note: replication_num and write_quorum as the seed's Overview and Write quorum sections describe
CREATE TABLE tbl (
    k1 INT,
    v1 VARCHAR(32)
)
DUPLICATE KEY(k1)
PARTITION BY RANGE(k1) (
    PARTITION p1 VALUES LESS THAN ("100"),
    PARTITION p2 VALUES LESS THAN ("200")
)
DISTRIBUTED BY HASH(k1) BUCKETS 2
PROPERTIES ("replication_num" = "3", "write_quorum" = "MAJORITY");

-- @id: setup-create-table-tbl1
-- @seed: 003_d0befc1bf3232b7f.txt:158
-- @kind: setup
CREATE TABLE tbl1 (
    k1 INT,
    v1 VARCHAR(32)
)
DUPLICATE KEY(k1)
DISTRIBUTED BY HASH(k1) BUCKETS 3
PROPERTIES ("replication_num" = "3");

-- @id: check-count-of-empty-table
-- @seed: 003_d0befc1bf3232b7f.txt:158
-- @kind: check
-- @value: 0
-- @note: count(*) over a table with no row is 0 (the tables of this seed stay empty)
SELECT count(*) FROM tbl1;

-- @id: 003-alter-table-write_quorum
-- @seed: 003_d0befc1bf3232b7f.txt:42
-- @kind: derived
-- @note: "add this property [write_quorum] to an existing table using ALTER TABLE"
ALTER TABLE tbl1 SET ("write_quorum" = "ONE");

-- @id: 003-show-proc-statistic
-- @seed: 003_d0befc1bf3232b7f.txt:80
-- @kind: seed
-- @columns: DbId, DbName, TableNum, PartitionNum, IndexNum, TabletNum, ReplicaNum, UnhealthyTabletNum, InconsistentTabletNum
-- @columns-shown: 003_d0befc1bf3232b7f.txt:88
-- @capture: DB_ID = DbId where DbName = test
-- @mysql-client: -t
-- @seed-also: 003_d0befc1bf3232b7f.txt:86
SHOW PROC '/statistic';

-- @id: 003-excluded-show-proc-statistic-dbid-synopsis
-- @seed: 003_d0befc1bf3232b7f.txt:103
-- @kind: excluded
-- @reason: a synopsis (<DbId>); its example (line 109) is in the fixture with a real DbId
SHOW PROC '/statistic/<DbId>'

-- @id: 003-show-proc-statistic-dbid
-- @seed: 003_d0befc1bf3232b7f.txt:109
-- @kind: seed
-- @adjust: ${DB_ID} <= 5909381
-- @columns: UnhealthyTablets, InconsistentTablets
-- @columns-shown: 003_d0befc1bf3232b7f.txt:111
SHOW PROC '/statistic/${DB_ID}';

-- @id: 003-excluded-admin-show-replica-status-synopsis
-- @seed: 003_d0befc1bf3232b7f.txt:124
-- @kind: excluded
-- @reason: a synopsis (<table_name>, [optional] parts, {a|b} choices); its example (line 132) and the
-- @reason: concrete forms of its options (003-replica-status-*) are in the fixture
ADMIN SHOW REPLICA STATUS FROM <table_name> 
[PARTITION (<partition_name_1>[, <partition_name_2>, ...])]
[WHERE STATUS = {'OK'|'DEAD'|'VERSION_ERROR'|'SCHEMA_ERROR'|'MISSING'}]

-- @id: 003-admin-show-replica-status-tbl-p1-p2-ok
-- @seed: 003_d0befc1bf3232b7f.txt:132
-- @kind: seed
-- @columns: TabletId, ReplicaId, BackendId, Version, LastFailedVersion, LastSuccessVersion, CommittedVersion, SchemaHash, VersionNum, IsBad, State, Status
-- @columns-shown: 003_d0befc1bf3232b7f.txt:134
-- @mysql-client: -Dtest
ADMIN SHOW REPLICA STATUS FROM tbl PARTITION (p1, p2) WHERE STATUS = "OK";

-- @id: 003-replica-status-tbl1
-- @seed: 003_d0befc1bf3232b7f.txt:124
-- @kind: synopsis
-- @columns: TabletId, ReplicaId, BackendId, Version, LastFailedVersion, LastSuccessVersion, CommittedVersion, SchemaHash, VersionNum, IsBad, State, Status
-- @columns-shown: 003_d0befc1bf3232b7f.txt:134
ADMIN SHOW REPLICA STATUS FROM tbl1

-- @id: 003-replica-status-dead
-- @seed: 003_d0befc1bf3232b7f.txt:126
-- @kind: synopsis
-- @columns: TabletId, ReplicaId, BackendId, Version, LastFailedVersion, LastSuccessVersion, CommittedVersion, SchemaHash, VersionNum, IsBad, State, Status
-- @columns-shown: 003_d0befc1bf3232b7f.txt:134
ADMIN SHOW REPLICA STATUS FROM tbl1 WHERE STATUS = 'DEAD'

-- @id: 003-replica-status-version_error
-- @seed: 003_d0befc1bf3232b7f.txt:126
-- @kind: synopsis
-- @columns: TabletId, ReplicaId, BackendId, Version, LastFailedVersion, LastSuccessVersion, CommittedVersion, SchemaHash, VersionNum, IsBad, State, Status
-- @columns-shown: 003_d0befc1bf3232b7f.txt:134
ADMIN SHOW REPLICA STATUS FROM tbl PARTITION (p1) WHERE STATUS = 'VERSION_ERROR'

-- @id: 003-replica-status-schema_error
-- @seed: 003_d0befc1bf3232b7f.txt:126
-- @kind: synopsis
-- @columns: TabletId, ReplicaId, BackendId, Version, LastFailedVersion, LastSuccessVersion, CommittedVersion, SchemaHash, VersionNum, IsBad, State, Status
-- @columns-shown: 003_d0befc1bf3232b7f.txt:134
ADMIN SHOW REPLICA STATUS FROM tbl1 WHERE STATUS = 'SCHEMA_ERROR'

-- @id: 003-replica-status-missing
-- @seed: 003_d0befc1bf3232b7f.txt:126
-- @kind: synopsis
-- @columns: TabletId, ReplicaId, BackendId, Version, LastFailedVersion, LastSuccessVersion, CommittedVersion, SchemaHash, VersionNum, IsBad, State, Status
-- @columns-shown: 003_d0befc1bf3232b7f.txt:134
ADMIN SHOW REPLICA STATUS FROM tbl PARTITION (p1, p2) WHERE STATUS = 'MISSING'

-- @id: 003-excluded-show-tablet-from-synopsis
-- @seed: 003_d0befc1bf3232b7f.txt:152
-- @kind: excluded
-- @reason: a synopsis (<table_name>); its example (line 158) is in the fixture
SHOW TABLET FROM <table_name>

-- @id: 003-show-tablet-from-tbl1
-- @seed: 003_d0befc1bf3232b7f.txt:158
-- @kind: seed
-- @columns: TabletId, ReplicaId, BackendId, SchemaHash, Version, VersionHash, LstSuccessVersion, LstSuccessVersionHash, LstFailedVersion, LstFailedVersionHash, LstFailedTime, DataSize, RowCount, State, LstConsistencyCheckTime, CheckVersion, CheckVersionHash, VersionCount, PathHash, MetaUrl, CompactionStatus
-- @columns-shown: 003_d0befc1bf3232b7f.txt:160
-- @capture: TABLET_ID = TabletId
SHOW TABLET FROM tbl1;

-- @id: 003-excluded-admin-show-replica-distribution-synopsis
-- @seed: 003_d0befc1bf3232b7f.txt:175
-- @kind: excluded
-- @reason: a synopsis (<table_name>); its example (line 181) is in the fixture
ADMIN SHOW REPLICA DISTRIBUTION FROM <table_name>

-- @id: 003-admin-show-replica-distribution-tbl1
-- @seed: 003_d0befc1bf3232b7f.txt:181
-- @kind: seed
-- @columns: BackendId, ReplicaNum, Graph, Percent
-- @columns-shown: 003_d0befc1bf3232b7f.txt:183
ADMIN SHOW REPLICA DISTRIBUTION FROM tbl1;

-- @id: 003-excluded-show-tablet-id-synopsis
-- @seed: 003_d0befc1bf3232b7f.txt:204
-- @kind: excluded
-- @reason: a synopsis (<TabletId>); its example (line 210) is in the fixture with a real tablet id
SHOW TABLET <TabletId>

-- @id: 003-show-tablet-id
-- @seed: 003_d0befc1bf3232b7f.txt:210
-- @kind: seed
-- @adjust: ${TABLET_ID} <= 29502553
-- @columns: DbName, TableName, PartitionName, IndexName, DbId, TableId, PartitionId, IndexId, IsSync, DetailCmd
-- @columns-shown: 003_d0befc1bf3232b7f.txt:212
-- @capture: TABLET_DB_ID = DbId
-- @capture: TABLE_ID = TableId
-- @capture: PARTITION_ID = PartitionId
-- @capture: INDEX_ID = IndexId
SHOW TABLET ${TABLET_ID};

-- @id: 003-show-proc-dbs-tablet
-- @seed: 003_d0befc1bf3232b7f.txt:225
-- @kind: seed
-- @adjust: ${TABLET_DB_ID} <= 29502391
-- @adjust: ${TABLE_ID} <= 29502428
-- @adjust: ${PARTITION_ID} <= 29502427
-- @adjust: ${INDEX_ID} <= 29502428
-- @adjust: ${TABLET_ID} <= 29502553
-- @columns: ReplicaId, BackendId, Version, VersionHash, LstSuccessVersion, LstSuccessVersionHash, LstFailedVersion, LstFailedVersionHash, LstFailedTime, SchemaHash, DataSize, RowCount, State, IsBad, VersionCount, PathHash, MetaUrl, CompactionStatus
-- @columns-shown: 003_d0befc1bf3232b7f.txt:227
-- @note: the DetailCmd of SHOW TABLET (line 214 shows this very statement)
SHOW PROC '/dbs/${TABLET_DB_ID}/${TABLE_ID}/partitions/${PARTITION_ID}/${INDEX_ID}/${TABLET_ID}';

-- @id: 003-excluded-admin-repair-synopsis
-- @seed: 003_d0befc1bf3232b7f.txt:244
-- @kind: excluded
-- @reason: a synopsis (<table_name>, [optional] part) without an example; its two concrete forms
-- @reason: (003-admin-repair-*) are in the fixture
ADMIN REPAIR TABLE <table_name>
[PARTITION (<partition_name_1>[, <partition_name_2>, ...])]

-- @id: 003-admin-repair-table-tbl1
-- @seed: 003_d0befc1bf3232b7f.txt:244
-- @kind: synopsis
ADMIN REPAIR TABLE tbl1

-- @id: 003-admin-repair-table-tbl-partitions
-- @seed: 003_d0befc1bf3232b7f.txt:245
-- @kind: synopsis
ADMIN REPAIR TABLE tbl PARTITION (p1, p2)

-- @id: 003-excluded-admin-cancel-repair-synopsis
-- @seed: 003_d0befc1bf3232b7f.txt:257
-- @kind: excluded
-- @reason: a synopsis (<table_name>, [optional] part) without an example; its two concrete forms
-- @reason: (003-admin-cancel-repair-*) are in the fixture
ADMIN CANCEL REPAIR TABLE <table_name>
[PARTITION (<partition_name_1>[, <partition_name_2>, ...])]

-- @id: 003-admin-cancel-repair-table-tbl1
-- @seed: 003_d0befc1bf3232b7f.txt:257
-- @kind: synopsis
ADMIN CANCEL REPAIR TABLE tbl1

-- @id: 003-admin-cancel-repair-table-tbl-partitions
-- @seed: 003_d0befc1bf3232b7f.txt:258
-- @kind: synopsis
ADMIN CANCEL REPAIR TABLE tbl PARTITION (p1, p2)

-- @id: 003-excluded-capacity-coefficient-formula
-- @seed: 003_d0befc1bf3232b7f.txt:274
-- @kind: excluded
-- @reason: a formula in an SQL block, not a statement
capacityCoefficient= 2 * Disk utilization - 0.5

-- @id: 003-show-proc-pending-tablets
-- @seed: 003_d0befc1bf3232b7f.txt:290
-- @kind: seed
-- @columns: TabletId, Type, Status, State, OrigPrio, DynmPrio, SrcBe, SrcPath, DestBe, DestPath, Timeout, Create, LstSched, LstVisit, Finished, Rate, FailedSched, FailedRunning, LstAdjPrio, VisibleVer, VisibleVerHash, CmtVer, CmtVerHash, ErrMsg
-- @columns-shown: 003_d0befc1bf3232b7f.txt:297
SHOW PROC '/cluster_balance/pending_tablets';

-- @id: 003-show-proc-running-tablets
-- @seed: 003_d0befc1bf3232b7f.txt:328
-- @kind: seed
-- @columns: TabletId, Type, Status, State, OrigPrio, DynmPrio, SrcBe, SrcPath, DestBe, DestPath, Timeout, Create, LstSched, LstVisit, Finished, Rate, FailedSched, FailedRunning, LstAdjPrio, VisibleVer, VisibleVerHash, CmtVer, CmtVerHash, ErrMsg
-- @columns-shown: 003_d0befc1bf3232b7f.txt:297
-- @note: "The returned results are identical to those of the pending tasks" (line 331)
SHOW PROC '/cluster_balance/running_tablets';

-- @id: 003-show-proc-history-tablets
-- @seed: 003_d0befc1bf3232b7f.txt:336
-- @kind: seed
-- @columns: TabletId, Type, Status, State, OrigPrio, DynmPrio, SrcBe, SrcPath, DestBe, DestPath, Timeout, Create, LstSched, LstVisit, Finished, Rate, FailedSched, FailedRunning, LstAdjPrio, VisibleVer, VisibleVerHash, CmtVer, CmtVerHash, ErrMsg
-- @columns-shown: 003_d0befc1bf3232b7f.txt:297
-- @note: "The returned results are identical to those of the pending tasks" (line 339)
SHOW PROC '/cluster_balance/history_tablets';

-- @id: 003-admin-set-tablet_sched_slot_num_per_path
-- @seed: 003_d0befc1bf3232b7f.txt:343
-- @kind: derived
-- @note: "You can increase the number of slots ... by increasing the value of the FE dynamic parameter
-- @note: tablet_sched_slot_num_per_path"
ADMIN SET FRONTEND CONFIG ("tablet_sched_slot_num_per_path" = "4");


-- ==================================================================== 004: Doris PR #313 (a Java diff)
-- The diff holds no SQL statement; what looks like SQL is listed here.

-- @id: 004-excluded-export-table-grammar
-- @seed: 004_b8eebb1da9616ff6.txt:46
-- @kind: excluded
-- @reason: a rule of Doris' sql_parser.cup (EXPORT TABLE ... TO path), not a statement; tabletsim
-- @reason: has no EXPORT
KW_EXPORT KW_TABLE base_table_ref:tblRef
    KW_TO STRING_LITERAL:path

-- @id: 004-excluded-alter-system-add-backend-to
-- @seed: 004_b8eebb1da9616ff6.txt:759
-- @kind: excluded
-- @reason: named in a Java comment with "..." for its arguments; Doris' multi-cluster form; tabletsim
-- @reason: BEs register themselves (ALTER SYSTEM ADD BACKEND is not supported)
ALTER SYSTEM ADD BACKEND TO ...

-- @id: 004-excluded-alter-system-add-backend
-- @seed: 004_b8eebb1da9616ff6.txt:759
-- @kind: excluded
-- @reason: named in a Java comment with "..." for its arguments; tabletsim BEs register themselves
-- @reason: (ALTER SYSTEM ADD BACKEND is not supported)
ALTER SYSTEM ADD BACKEND ...
