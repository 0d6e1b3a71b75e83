"""Tables of every PostgreSQL column type the connector documents, with edge values, for the capture.

One table per family (numbers, text, time, others, arrays) and one keyed by a composite primary key
of key-capable types. `cdc/capture.py` snapshots them, then runs `STEPS` against all of them at once
and records what Debezium sent and Postgres's own text of every row.
"""

from __future__ import annotations

DATABASE = "fixtures_types"

EXTENSIONS = ("citext", "hstore", "ltree")
"""Contrib extensions the tables use (Debian's postgresql-15 ships them)."""

BIG = "repeat('0123456789abcdef', 1024)"
"""16 KB of text: out of line (storage external), so an update leaving it alone sends the placeholder."""

DDL = """
create type mood as enum ('happy', 'sad', 'ok');
create domain positive_int as integer check (value > 0);

create table numbers (
    id          integer primary key,
    small_col   smallint,
    int_col     integer,
    big_col     bigint,
    real_col    real,
    double_col  double precision,
    num_col     numeric,
    dec_col     numeric(12, 2),
    dec38_col   numeric(38, 0),
    dec40_col   numeric(40, 5),
    negscale_col numeric(5, -2),
    money_col   money,
    oid_col     oid
);

create table texts (
    id          integer primary key,
    text_col    text,
    varchar_col varchar(10),
    char_col    char(5),
    qchar_col   "char",
    name_col    name,
    citext_col  citext,
    xml_col     xml,
    big_text    text
);
alter table texts alter column big_text set storage external;

create table times (
    id          integer primary key,
    date_col    date,
    time_col    time,
    time0_col   time(0),
    timetz_col  timetz,
    ts_col      timestamp,
    ts3_col     timestamp(3),
    ts0_col     timestamp(0),
    tstz_col    timestamptz,
    tstz0_col   timestamptz(0),
    interval_col interval
);

create table others (
    id          integer primary key,
    bool_col    boolean,
    bytea_col   bytea,
    uuid_col    uuid,
    json_col    json,
    jsonb_col   jsonb,
    inet_col    inet,
    cidr_col    cidr,
    macaddr_col macaddr,
    macaddr8_col macaddr8,
    bit1_col    bit(1),
    bit_col     bit(12),
    varbit_col  varbit(20),
    tsvector_col tsvector,
    point_col   point,
    line_col    line,
    lseg_col    lseg,
    box_col     box,
    path_col    path,
    polygon_col polygon,
    circle_col  circle,
    int4range_col int4range,
    int8range_col int8range,
    numrange_col numrange,
    tsrange_col tsrange,
    tstzrange_col tstzrange,
    daterange_col daterange,
    enum_col    mood,
    domain_col  positive_int,
    hstore_col  hstore,
    ltree_col   ltree,
    lsn_col     pg_lsn,
    tsquery_col tsquery,
    multirange_col int4multirange,
    big_jsonb   jsonb,
    big_bytea   bytea
);
alter table others alter column big_jsonb set storage external;
alter table others alter column big_bytea set storage external;

create table arrays (
    id          integer primary key,
    int2_arr    smallint[],
    int4_arr    integer[],
    int8_arr    bigint[],
    real_arr    real[],
    double_arr  double precision[],
    num_arr     numeric[],
    dec_arr     numeric(12, 2)[],
    text_arr    text[],
    varchar_arr varchar(10)[],
    char_arr    char(3)[],
    bool_arr    boolean[],
    bytea_arr   bytea[],
    uuid_arr    uuid[],
    json_arr    json[],
    jsonb_arr   jsonb[],
    date_arr    date[],
    time_arr    time[],
    timetz_arr  timetz[],
    ts_arr      timestamp[],
    tstz_arr    timestamptz[],
    interval_arr interval[],
    inet_arr    inet[],
    cidr_arr    cidr[],
    macaddr_arr macaddr[],
    int4range_arr int4range[],
    enum_arr    mood[],
    int4_2d     integer[][],
    text_2d     text[][],
    big_arr     integer[]
);
alter table arrays alter column big_arr set storage external;

create table keys (
    k_int       integer,
    k_text      text,
    k_date      date,
    k_ts        timestamptz,
    k_uuid      uuid,
    k_dec       numeric(12, 2),
    payload     text,
    primary key (k_int, k_text, k_date, k_ts, k_uuid, k_dec)
);
"""

TABLES = ("numbers", "texts", "times", "others", "arrays", "keys")

# Each row is SQL literals by column (absent columns are NULL), so edge values read as Postgres sees them.

NUMBERS = {
    1: dict(  # minimums
        small_col="-32768",
        int_col="-2147483648",
        big_col="-9223372036854775808",
        real_col="'-3.4028235e+38'",
        double_col="'-1.7976931348623157e+308'",
        num_col="'-123456789012345678901234567890123456789012345.123456789012345678901234567890'",
        dec_col="'-9999999999.99'",
        dec38_col="'-99999999999999999999999999999999999999'",
        dec40_col="'-99999999999999999999999999999999999.99999'",
        negscale_col="'-9999900'",
        money_col="'-92233720368547758.08'",
        oid_col="0",
    ),
    2: dict(  # maximums
        small_col="32767",
        int_col="2147483647",
        big_col="9223372036854775807",
        real_col="'3.4028235e+38'",
        double_col="'1.7976931348623157e+308'",
        num_col="'99999999999999999999999999999999999999999999999999.5'",
        dec_col="'9999999999.99'",
        dec38_col="'99999999999999999999999999999999999999'",
        dec40_col="'99999999999999999999999999999999999.99999'",
        negscale_col="'9999900'",
        money_col="'92233720368547758.07'",
        oid_col="4294967295",
    ),
    3: dict(  # zeros, negative zeros, trailing zeros, the smallest magnitudes
        small_col="0",
        int_col="0",
        big_col="0",
        real_col="'-0'",
        double_col="'-0'",
        num_col="'0.000'",
        dec_col="'0.00'",
        dec38_col="'0'",
        dec40_col="'-0.00001'",
        negscale_col="'0'",
        money_col="'0'",
        oid_col="1",
    ),
    4: dict(  # NaN and infinities where the type has them
        real_col="'NaN'",
        double_col="'Infinity'",
        num_col="'NaN'",
        dec_col="'NaN'",
        dec38_col="'NaN'",
    ),
    5: dict(
        real_col="'-Infinity'",
        double_col="'NaN'",
        num_col="'Infinity'",
        dec40_col="'NaN'",
    ),
    6: dict(
        real_col="'1.4e-45'",
        double_col="'5e-324'",
        num_col="'-Infinity'",
        dec_col="'-0.01'",
        money_col="'0.01'",
    ),
    7: dict(),  # NULL in every column
}

TEXTS = {
    1: dict(
        text_col="''",
        varchar_col="''",
        char_col="''",
        qchar_col="'a'",
        name_col="''",
        citext_col="''",
        xml_col="''",
        big_text=BIG,
    ),
    2: dict(
        text_col="E'ünïcødé \"quoted\" \\\\ back\\\\slash\\nline\\ttab \\U0001F600'",
        varchar_col="'ten chars!'",
        char_col="'ab'",
        qchar_col="'Z'",
        name_col="repeat('n', 63)",
        citext_col="'MiXeD Case'",
        xml_col="'<a b=\"1\">x &amp; y<![CDATA[<z>]]></a>'",
        big_text=BIG + " || 'ünïcødé'",
    ),
    3: dict(
        text_col="'   leading and trailing   '",
        varchar_col="'é'",
        char_col="'abcde'",
        qchar_col="' '",
        name_col="'Name With Spaces'",
        citext_col="'ß'",
        xml_col="'<?xml version=\"1.0\"?><doc/>'",
    ),
    4: dict(),
}

TIMES = {
    1: dict(  # far past
        date_col="'4713-01-01 BC'",
        time_col="'00:00:00'",
        time0_col="'00:00:00'",
        timetz_col="'00:00:00+15:59'",
        ts_col="'4713-01-01 00:00:00 BC'",
        ts3_col="'0001-01-01 00:00:00.001'",
        ts0_col="'0001-01-01 00:00:00'",
        tstz_col="'4713-01-01 00:00:00+00 BC'",
        tstz0_col="'0001-01-01 00:00:00+05:45'",
        interval_col="'-178000000 years'",
    ),
    2: dict(  # far future
        date_col="'5874897-12-31'",
        time_col="'23:59:59.999999'",
        time0_col="'24:00:00'",
        timetz_col="'23:59:59.999999-15:59'",
        ts_col="'294246-12-31 23:59:59.999999'",
        ts3_col="'9999-12-31 23:59:59.999'",
        ts0_col="'9999-12-31 23:59:59'",
        tstz_col="'294246-12-31 23:59:59.999999+00'",
        tstz0_col="'9999-12-31 23:59:59-03:30'",
        interval_col="'178000000 years'",
    ),
    3: dict(  # leap days, time zones with minutes, microseconds, around the epoch
        date_col="'2024-02-29'",
        time_col="'12:34:56.000001'",
        time0_col="'12:34:56'",
        timetz_col="'23:59:59.999999+05:45'",
        ts_col="'1969-12-31 23:59:59.999999'",
        ts3_col="'2000-02-29 12:00:00.5'",
        ts0_col="'1970-01-01 00:00:00'",
        tstz_col="'2024-02-29 23:59:59.999999+05:45'",
        tstz0_col="'1900-01-01 00:00:00-03:30'",
        interval_col="'-1 years -2 mons +3 days -04:05:06.000001'",
    ),
    4: dict(  # infinities
        date_col="'infinity'",
        timetz_col="'12:00:00-03:30'",
        ts_col="'infinity'",
        ts3_col="'-infinity'",
        tstz_col="'-infinity'",
        tstz0_col="'infinity'",
        interval_col="'1 day 25:00:00.5'",
    ),
    5: dict(
        date_col="'-infinity'",
        ts_col="'-infinity'",
        ts3_col="'infinity'",
        ts0_col="'-infinity'",
        tstz_col="'infinity'",
        interval_col="'00:00:00'",
    ),
    6: dict(interval_col="'1 mon'"),
    7: dict(),
}

OTHERS = {
    1: dict(
        bool_col="true",
        bytea_col="''::bytea",
        uuid_col="'00000000-0000-0000-0000-000000000000'",
        json_col='\'{ "b" : 1,  "a" : [1, 2.50, null], "a" : "dup" }\'',
        jsonb_col='\'{"n": 1.50, "s": "ü\\\\tx", "deep": {"x": [true, null]}}\'',
        inet_col="'192.168.0.1/24'",
        cidr_col="'10.0.0.0/8'",
        macaddr_col="'08:00:2b:01:02:03'",
        macaddr8_col="'08:00:2b:01:02:03:04:05'",
        bit1_col="B'1'",
        bit_col="B'000000000001'",
        varbit_col="B'0'",
        tsvector_col="'a fat cat:3 sat:1A,2B'",
        point_col="'(1.5, -2.25)'",
        line_col="'{1, -1, 0}'",
        lseg_col="'[(0,0),(1,1)]'",
        box_col="'((1,1),(0,0))'",
        path_col="'[(0,0),(1,1),(2,0)]'",
        polygon_col="'((0,0),(1,1),(1,0))'",
        circle_col="'<(0,0),1.5>'",
        int4range_col="'[1,10)'",
        int8range_col="'(,9223372036854775807)'",
        numrange_col="'[1.50,2.25]'",
        tsrange_col="'[2024-02-29 00:00:00.000001,infinity)'",
        tstzrange_col="'[2024-02-29 00:00:00+05:45,2024-03-01 00:00:00-03:30)'",
        daterange_col="'[2024-02-29,2024-03-01]'",
        enum_col="'happy'",
        domain_col="1",
        hstore_col='\'a=>1, "b c"=>NULL, ""=>""\'',
        ltree_col="'top.science.astronomy'",
        lsn_col="'16/B374D848'",
        tsquery_col="'fat & (rat | cat)'",
        multirange_col="'{[1,3), [5,8)}'",
        big_jsonb=f"jsonb_build_object('big', {BIG})",
        big_bytea=f"convert_to({BIG}, 'UTF8')",
    ),
    2: dict(
        bool_col="false",
        bytea_col="'\\x00ff7f80'::bytea",
        uuid_col="'ffffffff-ffff-ffff-ffff-ffffffffffff'",
        json_col="'[]'",
        jsonb_col="'\"just a string\"'",
        inet_col="'::ffff:1.2.3.4/128'",
        cidr_col="'2001:db8::/32'",
        macaddr_col="'ff:ff:ff:ff:ff:ff'",
        macaddr8_col="'00:00:00:00:00:00:00:00'",
        bit1_col="B'0'",
        bit_col="B'101010101010'",
        varbit_col="B'00000000000000000001'",
        tsvector_col="''",
        point_col="'(NaN, Infinity)'",
        line_col="'{0, 1, -1.5}'",
        lseg_col="'[(-1e300,0),(1e300,0)]'",
        box_col="'((0,0),(0,0))'",
        path_col="'((0,0),(1,0),(1,1))'",
        polygon_col="'((0,0))'",
        circle_col="'<(1e-300,-1e300),0>'",
        int4range_col="'empty'",
        int8range_col="'[-9223372036854775808,0]'",
        numrange_col="'(,)'",
        tsrange_col="'empty'",
        tstzrange_col="'(,infinity]'",
        daterange_col="'[-infinity,2024-02-29)'",
        enum_col="'ok'",
        domain_col="2147483647",
        hstore_col="''",
        ltree_col="''",
        big_jsonb=f"jsonb_build_object('other', {BIG})",
        big_bytea="'\\x00'::bytea",
    ),
    3: dict(),
}

_MOODS = "array['happy', 'sad', null]::mood[]"

ARRAYS = {
    1: dict(
        int2_arr="array[-32768, 0, null, 32767]::smallint[]",
        int4_arr="array[-2147483648, null, 2147483647]",
        int8_arr="array[-9223372036854775808, 9223372036854775807, null]::bigint[]",
        real_arr="array['NaN', '-0', 'Infinity', '-Infinity', null, '1.4e-45']::real[]",
        double_arr="array['NaN', '-0', '-Infinity', '5e-324', null, '0.1']::double precision[]",
        num_arr="array['1.500', null, '-0.000000000000000000000000000000000000000001']::numeric[]",
        dec_arr="array['9999999999.99', null, '0.00']::numeric(12, 2)[]",
        text_arr="array['', null, 'NULL', 'with \"quote\"', 'comma,brace{}', E'back\\\\slash']",
        varchar_arr="array['ten chars!', null]::varchar(10)[]",
        char_arr="array['a', null, 'abc']::char(3)[]",
        bool_arr="array[true, null, false]",
        bytea_arr="array['\\x00ff'::bytea, null, ''::bytea]",
        uuid_arr="array['00000000-0000-0000-0000-000000000001'::uuid, null]",
        json_arr="array['{\"a\": 1}'::json, null, '[ ]'::json]",
        jsonb_arr="array['{\"a\": 1}'::jsonb, null, 'null'::jsonb]",
        date_arr="array['2024-02-29'::date, null, 'infinity', '4713-01-01 BC']",
        time_arr="array['23:59:59.999999'::time, null, '00:00']",
        timetz_arr="array['23:59:59.999999+05:45'::timetz, null]",
        ts_arr="array['1969-12-31 23:59:59.999999'::timestamp, null, 'infinity']",
        tstz_arr="array['2024-02-29 23:59:59.999999+05:45'::timestamptz, null, '-infinity']",
        interval_arr="array['1 mon'::interval, null, '-1 day 00:00:00.000001']",
        inet_arr="array['192.168.0.1/24'::inet, null, '::1']",
        cidr_arr="array['10.0.0.0/8'::cidr, null]",
        macaddr_arr="array['08:00:2b:01:02:03'::macaddr, null]",
        int4range_arr="array['[1,10)'::int4range, null, 'empty']",
        enum_arr=_MOODS,
        int4_2d="array[[1, 2], [3, null]]",
        text_2d="array[['a', 'b'], [null, 'd']]",
        big_arr="array(select generate_series(1, 5000))",
    ),
    2: dict(
        int2_arr="'{}'::smallint[]",
        int4_arr="'{}'::integer[]",
        text_arr="array[null]::text[]",
        num_arr="array['NaN', 'Infinity', '-Infinity']::numeric[]",
        dec_arr="array['NaN']::numeric(12, 2)[]",
        date_arr="array['-infinity'::date]",
        ts_arr="array['-infinity'::timestamp]",
        tstz_arr="array['infinity'::timestamptz]",
        big_arr="array(select generate_series(-5000, -1))",
    ),
    3: dict(),
}

KEYS = {
    1: dict(
        k_int="1",
        k_text="'ünï key'",
        k_date="'2024-02-29'",
        k_ts="'2024-02-29 23:59:59.999999+05:45'",
        k_uuid="'00000000-0000-0000-0000-000000000001'",
        k_dec="'-0.01'",
        payload="'first'",
    ),
    2: dict(
        k_int="2",
        k_text="''",
        k_date="'4713-01-01 BC'",
        k_ts="'1969-12-31 23:59:59.999999+00'",
        k_uuid="'ffffffff-ffff-ffff-ffff-ffffffffffff'",
        k_dec="'9999999999.99'",
        payload="'second'",
    ),
}

ROWS: dict[str, dict[int, dict[str, str]]] = {
    "numbers": NUMBERS,
    "texts": TEXTS,
    "times": TIMES,
    "others": OTHERS,
    "arrays": ARRAYS,
    "keys": KEYS,
}


def insert(table: str, row: dict[str, str], key: int | None = None) -> str:
    """`insert` of one row of literals (the `id` column is `key`)."""
    columns = ({"id": str(key)} if key is not None else {}) | row
    return f"insert into {table} ({', '.join(columns)}) values ({', '.join(columns.values())})"


def snapshot_rows(table: str) -> list[tuple[int, dict[str, str]]]:
    """The rows a table holds before the connector starts: all but its last (the `insert` step's)."""
    return list(ROWS[table].items())[:-1]


def snapshot_statements() -> list[str]:
    return [
        insert(table, row, None if table == "keys" else key) for table in TABLES for key, row in snapshot_rows(table)
    ]


def _last(table: str) -> tuple[int, dict[str, str]]:
    return list(ROWS[table].items())[-1]


def _update_to(table: str, key: int, source: int) -> str:
    """Set every column of row `key` to the values of row `source` (NULL where `source` has none)."""
    columns = [c for c in _columns(table) if c != "id"]
    values = ROWS[table][source]
    assignments = ", ".join(f"{c} = {values.get(c, 'null')}" for c in columns)
    return f"update {table} set {assignments} where id = {key}"


def _columns(table: str) -> list[str]:
    body = DDL.split(f"create table {table} (")[1].split(");")[0]
    return [
        line.split()[0] for line in body.strip().splitlines() if line.strip() and not line.strip().startswith("primary")
    ]


_TOASTED = {"texts": "big_text", "others": "big_jsonb", "arrays": "big_arr"}
"""Tables with an out-of-line column, and one such column."""

_KEYED = ("numbers", "texts", "times", "others", "arrays")

STEPS: list[tuple[str, list[str], dict[str, int]]] = [
    # (step, statements in one transaction, messages expected per table)
    (
        "insert",
        [insert(t, _last(t)[1], _last(t)[0]) for t in _KEYED] + [insert("keys", KEYS[2])],
        {t: 1 for t in TABLES},
    ),
    (
        "update",
        # rows 1 and 2 swap values (every column changes, NULLs included); special values stream too
        [_update_to(t, 1, 2) for t in _KEYED]
        + [_update_to(t, 2, 1) for t in _KEYED]
        + [_update_to(t, 3, 4) for t in ("numbers", "times")]
        + [_update_to(t, 6, 5) for t in ("numbers", "times")]
        + ["update keys set payload = 'updated' where k_int = 1"],
        {"numbers": 4, "texts": 2, "times": 4, "others": 2, "arrays": 2, "keys": 1},
    ),
    (
        "update_toast_unchanged",
        [f"update {t} set id = id where id = 1" for t in _TOASTED]
        + [f"update {t} set {_columns(t)[1]} = null where id = 2" for t in _TOASTED],
        {t: 2 for t in _TOASTED},
    ),
    (
        "key_change",
        [f"update {t} set id = 100 + id where id = 2" for t in _KEYED]
        + ["update keys set k_ts = '2024-03-01 00:00:00.000001-03:30', k_dec = '0.00' where k_int = 2"],
        {t: 3 for t in TABLES},
    ),
    (
        "delete",
        [f"delete from {t} where id = 1" for t in _KEYED] + ["delete from keys where k_int = 1"],
        {t: 2 for t in TABLES},
    ),
]
"""After the snapshot; a key change is a delete, its tombstone and a create; a delete has a tombstone."""
