use super::*;

#[track_caller]
fn harmless(sql: &str) {
    assert!(!may_change_session(sql), "should be harmless: {sql:?}");
}

#[track_caller]
fn changing(sql: &str) {
    assert!(may_change_session(sql), "should count as changing: {sql:?}");
}

#[test]
fn calls_of_functions_that_are_not_built_in_count_as_changing() {
    changing("SELECT f13_touch()");
    changing("SELECT test.f13_touch(1)");
    changing("SELECT `my fn`(1)");
    changing("UPDATE t SET a = my_func(a) WHERE id = 1");
    changing("DO my_proc_like(1)");
    harmless("SELECT COUNT(*), SUM(x), COALESCE(a, 0) FROM t GROUP BY y");
    harmless("SELECT CAST(x AS DECIMAL(10,2)), DATE_FORMAT(NOW(), '%Y') FROM t");
    harmless("SELECT * FROM t WHERE a IN (1, 2) AND EXISTS (SELECT 1 FROM u WHERE u.id = t.id)");
    harmless("SELECT JSON_EXTRACT(doc, '$.a'), LOWER(name) FROM t WHERE (a = 1 OR b = 2)");
    harmless("WITH x AS (SELECT 1) SELECT * FROM x");
    harmless("SELECT ROW_NUMBER() OVER (PARTITION BY a ORDER BY b) FROM t");
}

#[test]
fn plain_reads_and_writes_are_harmless() {
    for sql in [
        "SELECT 1",
        "select 1",
        "SeLeCt 1",
        "SELECT * FROM t WHERE a = ? AND b = ?",
        "SELECT a, b FROM t WHERE id = :id",
        "SELECT COUNT(*), NOW(), CONCAT(a, 'x') FROM t GROUP BY a HAVING COUNT(*) > 1",
        "SELECT * FROM t FOR UPDATE",
        "SELECT * FROM t LOCK IN SHARE MODE",
        "SELECT * FROM t FOR UPDATE SKIP LOCKED",
        "UPDATE t SET a = 1 WHERE id = ?",
        "update t set a = a + 1, b = 'x' where id in (1, 2)",
        "DELETE FROM t WHERE id = 1",
        "delete t1 from t1 join t2 on t1.id = t2.id",
        "WITH x AS (SELECT 1 AS a) SELECT * FROM x",
        "WITH RECURSIVE r (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r",
        "SHOW TABLES",
        "SHOW WARNINGS",
        "DESCRIBE t",
        "DESC t",
        "EXPLAIN SELECT * FROM t",
        "VALUES (1), (2)",
        "VALUES ROW(1)",
        "TABLE t",
        "DO SLEEP(0)",
        "(SELECT 1) UNION (SELECT 2)",
        "((SELECT 1))",
        "SELECT LAST_INSERT_ID()",
        "SELECT LAST_INSERT_ID( )",
        "SELECT FOUND_ROWS(), ROW_COUNT(), CONNECTION_ID()",
        "SELECT IS_USED_LOCK('x'), IS_FREE_LOCK('y')",
        "SELECT INSERT('abc', 1, 1, 'x')",
        "SELECT SLEEP(1)",
        "SELECT * FROM t ORDER BY a DESC LIMIT 10",
    ] {
        harmless(sql);
    }
}

#[test]
fn system_variable_reads_are_harmless() {
    for sql in [
        "SELECT @@wait_timeout",
        "SELECT @@SESSION.sql_mode, @@GLOBAL.max_connections",
        "select @@in_transaction",
        "SELECT @@wait_timeout, @@max_connections, VERSION()",
    ] {
        harmless(sql);
    }
    // But not as assignments, and not outside read-only statements.
    changing("SELECT @@x := 1");
    changing("UPDATE t SET a = @@wait_timeout");
    changing("DELETE FROM t WHERE a = @@wait_timeout");
    changing("SELECT @@wait_timeout INTO @w");
}

#[test]
fn whitespace_and_comments_before_the_first_keyword() {
    for sql in [
        "   SELECT 1",
        "\n\t\r SELECT 1",
        "/* comment */ SELECT 1",
        "/* multi\n line */SELECT 1",
        "/**/SELECT 1",
        "-- comment\nSELECT 1",
        "--\tcomment\nSELECT 1",
        "--\nSELECT 1",
        "# comment\nSELECT 1",
        "#\nSELECT 1",
        "/*+ hint */ SELECT 1",
        "SELECT /*+ MAX_EXECUTION_TIME(1000) */ 1",
        "SELECT 1 -- ; SET @x = 1",
        "SELECT 1 # ; SET @x = 1",
        "SELECT 1 /* ; SET @x = 1 */",
        "SELECT 1 --",
    ] {
        harmless(sql);
    }
    for sql in [
        "/* comment */ SET @x = 1",
        "-- comment\nSET NAMES latin1",
        "# comment\nSET @x = 1",
        "/* a */ /* b */ -- c\n  set @x=1",
        // `--x` is not a comment: two minus signs, then `x`.
        "--x\nSELECT 1",
        "SELECT 1 --\nSET @x = 1",
    ] {
        changing(sql);
    }
}

#[test]
fn user_variables_count_as_changing() {
    for sql in [
        "SET @x = 1",
        "set @x=1",
        "SET @x := 1",
        "select @x:=1",
        "SELECT @x := 1",
        "SELECT 1 INTO @x",
        "SELECT a INTO @a FROM t LIMIT 1",
        "SELECT @x",
        "SELECT * FROM t WHERE a = @x",
        "UPDATE t SET a = @x := a + 1",
        "SELECT @'quoted name' := 1",
        "SELECT @`x`",
    ] {
        changing(sql);
    }
}

#[test]
fn locks_sequences_and_last_insert_id() {
    for sql in [
        "SELECT GET_LOCK('x',1)",
        "SELECT GET_LOCK('x', 1)",
        "select get_lock('x', 1)",
        "SELECT GET_LOCK ('x', 1)",
        "DO GET_LOCK('x', 0)",
        "SELECT RELEASE_LOCK('x')",
        "SELECT RELEASE_ALL_LOCKS()",
        "SELECT `GET_LOCK`('x', 0)",
        "SELECT \"get_lock\"('x', 0)",
        "SELECT a FROM t WHERE GET_LOCK(CONCAT('k', a), 0)",
        "SELECT SERVICE_GET_WRITE_LOCKS('ns', 'x', 0)",
        "SELECT LAST_INSERT_ID(5)",
        "SELECT LAST_INSERT_ID (5)",
        "UPDATE seq SET id = LAST_INSERT_ID(id + 1)",
        "SELECT NEXTVAL(s)",
        "SELECT NEXT VALUE FOR s",
        "select next value for s",
        "SELECT SETVAL(s, 10)",
        "SELECT LASTVAL(s)",
        "SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 1",
    ] {
        changing(sql);
    }
}

#[test]
fn statements_that_change_state() {
    for sql in [
        "INSERT INTO t VALUES (1)",
        "insert into t values (1)",
        "REPLACE INTO t VALUES (1)",
        "LOAD DATA INFILE 'x' INTO TABLE t",
        "CREATE TEMPORARY TABLE t (a INT)",
        "create temporary table t (a int)",
        "DROP TEMPORARY TABLE t",
        "CREATE TABLE t (a INT)",
        "SET SESSION sql_mode = ''",
        "SET sql_mode = ''",
        "SET autocommit = 0",
        "SET NAMES latin1",
        "SET time_zone = '+00:00'",
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "SET STATEMENT max_statement_time = 1 FOR SELECT 1",
        "USE mysql",
        "PREPARE s FROM 'SELECT 1'",
        "EXECUTE s",
        "DEALLOCATE PREPARE s",
        "LOCK TABLES t READ",
        "UNLOCK TABLES",
        "HANDLER t OPEN",
        "XA START 'x'",
        "CALL p()",
        "CALL p",
        "KILL QUERY 1",
        "FLUSH TABLES",
        "ANALYZE TABLE t",
        "EXPLAIN ANALYZE SELECT 1",
        "SELECT * FROM t INTO OUTFILE '/tmp/x'",
        "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x",
        "SELECT CAST(a AS CHAR CHARACTER SET utf8mb4) FROM t", // a harmless false positive
        "SELECT temporary FROM t",                             // likewise
    ] {
        changing(sql);
    }
}

#[test]
fn transaction_statements_are_left_to_the_status_flags() {
    for sql in [
        "BEGIN",
        "begin work",
        "START TRANSACTION",
        "START TRANSACTION READ ONLY",
        "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ WRITE",
        "COMMIT",
        "COMMIT WORK",
        "COMMIT AND CHAIN",
        "ROLLBACK",
        "ROLLBACK TO SAVEPOINT a",
        "SAVEPOINT a",
        "RELEASE SAVEPOINT a",
        "BEGIN; UPDATE t SET a = 1; COMMIT",
    ] {
        harmless(sql);
    }
    for sql in [
        "COMMIT RELEASE",
        "ROLLBACK AND NO CHAIN RELEASE",
        "BEGIN NOT ATOMIC SELECT 1; END",
        "START SLAVE",
        "RELEASE_LOCK",
        "BEGIN; SET @x = 1; COMMIT",
    ] {
        changing(sql);
    }
}

#[test]
fn multi_statement_text() {
    harmless("SELECT 1; SELECT 2");
    harmless("SELECT 1;");
    harmless("SELECT 1;;  ;");
    harmless("SELECT ';' ; SELECT 2");
    changing("SELECT 1; SET @x=1");
    changing("SELECT 1;SET @x=1");
    changing("SELECT 1;\nset @x = 1;");
    changing("SELECT ';'; SET @x = 1");
    changing("SELECT 1; INSERT INTO t VALUES (1)");
    changing("SELECT 1; USE mysql; SELECT 2");
    changing("UPDATE t SET a = 1; SET @x = 1");
}

#[test]
fn string_literals_and_quoted_names() {
    harmless("SELECT 'a@b', 'x;y', \"plain\" FROM t");
    // Double quotes may be a name (`ANSI_QUOTES`): checked like a word.
    changing("SELECT \"set\" FROM t");
    harmless("SELECT * FROM t WHERE email = 'a@b.c' AND note = 'SET @x = 1; GET_LOCK'");
    harmless("SELECT 'it''s'");
    harmless("SELECT `weird``name` FROM `t`");
    harmless("SELECT _utf8mb4'x', N'y', X'ff'");
    // A backslash in a string: its meaning depends on sql_mode.
    changing("SELECT 'a\\'b'");
    changing("SELECT 'a\\', GET_LOCK('x', 0), '...'");
    changing("SELECT \"a\\\"\"");
}

#[test]
fn unparseable_text_counts_as_changing() {
    for sql in [
        "",
        "   ",
        ";",
        "-- only a comment",
        "/* only a comment */",
        "SELECT 'unterminated",
        "SELECT \"unterminated",
        "SELECT `unterminated",
        "SELECT 1 /* unterminated",
        "/*!40101 SET @x = 1 */",
        "/*!SELECT 1*/",
        "/*M!100101 SELECT 1 */",
        "SELECT 1 /*! , GET_LOCK('x', 0) */",
        "SELECT 1 /*m! , GET_LOCK('x', 0) */",
        "?",
        "1",
        "'SELECT'",
    ] {
        changing(sql);
    }
}

#[test]
fn bytes_that_are_not_utf8() {
    assert!(!may_change_session(b"SELECT '\xff\xfe' FROM t".as_slice()));
    assert!(!may_change_session(
        b"SELECT \xc3\xa9t\xc3\xa9 FROM t".as_slice()
    ));
    assert!(may_change_session(b"SET @\xff = 1".as_slice()));
}
