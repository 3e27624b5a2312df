-- Ferry's schema-change capture on a Postgres source (docs/schema-changes.md).
--
-- Event triggers record every DDL command as a signed, transactional logical message
-- ("ferry.ddl"), at its place in the transaction, so that the standby runs the same command at
-- the same point of the history; partitions get a trigger that reports their TRUNCATE
-- ("ferry.truncate"), which publish_via_partition_root does not send. Messages are signed
-- (HMAC-SHA256 with a key only superusers can read) because any role may call
-- pg_logical_emit_message: the capture replays only messages whose signature it checked.
--
-- ferryd runs this file when it starts as primary and finds it missing or older; that needs a
-- superuser. Otherwise a superuser runs it once: psql -v ON_ERROR_STOP=1 -f ddl_capture.sql
-- (ferryd --print-ddl-capture-sql prints it). It is idempotent.
BEGIN;
SET LOCAL session_replication_role = replica;  -- event triggers do not see the install itself
SET LOCAL client_min_messages = warning;
SELECT pg_advisory_xact_lock(7302719481);       -- one installer at a time
CREATE SCHEMA IF NOT EXISTS ferry;
-- The capture role calls ferry.capture_key() and ferry.ensure_truncate_triggers(); what the
-- schema holds is otherwise closed (the key table) or runs only as a trigger.
GRANT USAGE ON SCHEMA ferry TO PUBLIC;
CREATE TABLE IF NOT EXISTS ferry.capture_key (
  id int PRIMARY KEY CHECK (id = 1), key bytea NOT NULL, inner_pad bytea NOT NULL,
  outer_pad bytea NOT NULL);
REVOKE ALL ON ferry.capture_key FROM PUBLIC;

-- Raises insufficient_privilege unless the session's role has REPLICATION (or is a superuser):
-- what the capture role's entry points below require. `what` completes "only a role with
-- REPLICATION may ...".
CREATE OR REPLACE FUNCTION ferry.require_replication(what text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = session_user AND
                 (rolreplication OR rolsuper)) THEN
    RAISE EXCEPTION 'only a role with REPLICATION may %', what
      USING ERRCODE = 'insufficient_privilege';
  END IF;
END
$fn$;

-- The key, for the capture (a role with REPLICATION, which it needs anyway) to check signatures.
CREATE OR REPLACE FUNCTION ferry.capture_key() RETURNS bytea
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  PERFORM ferry.require_replication('read Ferry''s capture key');
  RETURN (SELECT key FROM ferry.capture_key WHERE id = 1);
END
$fn$;

-- Emits a signed transactional message; returns the message's WAL position.
CREATE OR REPLACE FUNCTION ferry.emit_signed(prefix text, payload text) RETURNS pg_lsn
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  k record;
  bytes bytea := convert_to(payload, 'UTF8');  -- whatever the database's encoding
BEGIN
  SELECT inner_pad, outer_pad INTO k FROM ferry.capture_key WHERE id = 1;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'Ferry''s capture key is missing: start ferryd to install it again';
  END IF;
  RETURN pg_logical_emit_message(true, prefix,
    convert_to(encode(sha256(k.outer_pad || sha256(k.inner_pad || bytes)), 'hex') || ' ', 'UTF8')
    || bytes);
END
$fn$;
REVOKE ALL ON FUNCTION ferry.emit_signed(text, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION ferry.sign_and_emit(prefix text, payload text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  PERFORM ferry.emit_signed(prefix, payload);
END
$fn$;
REVOKE ALL ON FUNCTION ferry.sign_and_emit(text, text) FROM PUBLIC;

-- Sequence values ("ferry.sequences"): logical decoding does not carry sequences, so the capture
-- role emits every sequence's last value periodically (when any changed) and at a switchover's
-- fence (docs/operations.md, "Switchover"); the standby sets its sequences forward to them.
CREATE TABLE IF NOT EXISTS ferry.sequence_sync (
  id int PRIMARY KEY CHECK (id = 1), digest text NOT NULL);
REVOKE ALL ON ferry.sequence_sync FROM PUBLIC;

CREATE OR REPLACE FUNCTION ferry.sequence_values() RETURNS jsonb
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
  SELECT coalesce(jsonb_agg(jsonb_build_object('schema', schemaname, 'name', sequencename,
                                               'value', last_value::text)
                            ORDER BY schemaname, sequencename), '[]')
    FROM pg_sequences
   WHERE last_value IS NOT NULL AND schemaname <> 'ferry' AND schemaname NOT LIKE 'pg\_temp%'
$fn$;
REVOKE ALL ON FUNCTION ferry.sequence_values() FROM PUBLIC;

-- `fence_operation`: the switchover whose fence this marks ('' for a periodic emission). Returns
-- the message's WAL position, or NULL when `only_if_changed` and nothing changed since the last.
CREATE OR REPLACE FUNCTION ferry.emit_sequences(fence_operation text, only_if_changed boolean)
RETURNS pg_lsn
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  vals jsonb;
  vals_digest text;
BEGIN
  PERFORM ferry.require_replication('emit sequence values');
  vals := ferry.sequence_values();
  vals_digest := md5(vals::text);
  IF only_if_changed AND (EXISTS (SELECT 1 FROM ferry.sequence_sync s
                                   WHERE s.id = 1 AND s.digest = vals_digest) OR
                           (vals = '[]' AND NOT EXISTS (SELECT 1 FROM ferry.sequence_sync))) THEN
    RETURN NULL;
  END IF;
  INSERT INTO ferry.sequence_sync VALUES (1, vals_digest)
    ON CONFLICT (id) DO UPDATE SET digest = excluded.digest;
  RETURN ferry.emit_signed('ferry.sequences', jsonb_build_object(
    'v', 1, 'fence_operation', coalesce(fence_operation, ''), 'sequences', vals)::text);
END
$fn$;

-- A promote's last step before the new primary takes writes: every sequence `gap` increments
-- past its value (the values the stream carried; the lost primary may have handed out more
-- since). Clamped to the sequence's bounds. Returns how many sequences were set.
CREATE OR REPLACE FUNCTION ferry.advance_sequences(gap bigint) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  s record;
  cur numeric;
  called boolean;
  target numeric;
  n int := 0;
BEGIN
  PERFORM ferry.require_replication('advance sequences');
  FOR s IN SELECT q.seqrelid::regclass AS name, q.seqincrement AS inc, q.seqmin AS lo,
                  q.seqmax AS hi, q.seqcycle AS cycles
             FROM pg_sequence q JOIN pg_class c ON c.oid = q.seqrelid
             JOIN pg_namespace ns ON ns.oid = c.relnamespace
            WHERE ns.nspname <> 'ferry' AND ns.nspname NOT LIKE 'pg\_temp%' LOOP
    -- The sequence's own state (pg_sequences hides it when not yet called).
    EXECUTE format('SELECT last_value, is_called FROM %s', s.name) INTO cur, called;
    target := cur + gap::numeric * s.inc;
    IF target > s.hi OR target < s.lo THEN
      IF s.cycles THEN
        RAISE EXCEPTION 'sequence % cycles and cannot be moved % increments past %: move it by hand',
          s.name, gap, cur;
      END IF;
      target := CASE WHEN s.inc > 0 THEN s.hi ELSE s.lo END;  -- its next nextval() fails
    END IF;
    -- Never back: a sequence already past the target keeps its value.
    IF (s.inc > 0 AND target > cur) OR (s.inc < 0 AND target < cur) OR NOT called THEN
      PERFORM setval(s.name, target::bigint, true);
      n := n + 1;
    END IF;
  END LOOP;
  RETURN n;
END
$fn$;

-- The fence (invariant 8; docs/operations.md, "Fencing"): every permanent table has the
-- statement trigger ferry_fence (BEFORE INSERT, UPDATE, DELETE, TRUNCATE), which calls
-- ferry.fence_guard(). While the fence is down the guard is an empty function; ferry.set_fence
-- replaces it by one that raises the fence's error. Ferry's apply runs with
-- session_replication_role = replica, where these triggers do not fire. ferry.fence keeps the
-- state for readers.
CREATE TABLE IF NOT EXISTS ferry.fence (
  id int PRIMARY KEY CHECK (id = 1), raised boolean NOT NULL, message text NOT NULL,
  hint text NOT NULL, changed_at timestamptz NOT NULL);
REVOKE ALL ON ferry.fence FROM PUBLIC;
GRANT SELECT ON ferry.fence TO PUBLIC;

DO $do$
BEGIN
  -- Created once: a re-install must not lift a raised fence.
  IF to_regprocedure('ferry.fence_guard()') IS NULL THEN
    CREATE FUNCTION ferry.fence_guard() RETURNS trigger LANGUAGE plpgsql
      AS 'BEGIN RETURN NULL; END';
  END IF;
END
$do$;

CREATE OR REPLACE FUNCTION ferry.add_fence_triggers() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  rel oid;
  saved_role text := current_setting('session_replication_role');
BEGIN
  PERFORM set_config('session_replication_role', 'replica', true);
  FOR rel IN SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p') AND c.relpersistence = 'p' AND
                    n.nspname NOT IN ('ferry', 'pg_catalog', 'information_schema') AND
                    n.nspname NOT LIKE 'pg\_toast%' AND NOT EXISTS (
                      SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND
                                                       t.tgname = 'ferry_fence') LOOP
    EXECUTE format('CREATE TRIGGER ferry_fence BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE '
                   'ON %s FOR EACH STATEMENT EXECUTE FUNCTION ferry.fence_guard()', rel::regclass);
  END LOOP;
  PERFORM set_config('session_replication_role', saved_role, true);
END
$fn$;
REVOKE ALL ON FUNCTION ferry.add_fence_triggers() FROM PUBLIC;

CREATE OR REPLACE FUNCTION ferry.set_fence(raise boolean, message text, hint text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  saved_role text := current_setting('session_replication_role');
BEGIN
  PERFORM ferry.require_replication('raise or lift Ferry''s fence');
  PERFORM pg_advisory_xact_lock(7302719482);
  IF raise THEN
    PERFORM ferry.add_fence_triggers();
  END IF;
  PERFORM set_config('session_replication_role', 'replica', true);
  EXECUTE format('CREATE OR REPLACE FUNCTION ferry.fence_guard() RETURNS trigger '
                 'LANGUAGE plpgsql AS %L',
                 CASE WHEN raise THEN format(
                   'BEGIN RAISE EXCEPTION USING ERRCODE = %L, MESSAGE = %L, HINT = %L; END',
                   'read_only_sql_transaction', message, hint)
                 ELSE 'BEGIN RETURN NULL; END' END);
  INSERT INTO ferry.fence VALUES (1, raise, message, hint, now())
    ON CONFLICT (id) DO UPDATE SET raised = excluded.raised, message = excluded.message,
                                   hint = excluded.hint, changed_at = excluded.changed_at;
  PERFORM set_config('session_replication_role', saved_role, true);
END
$fn$;

-- Ends the sessions whose transaction began before the fence was raised (they may have passed
-- the guard already) and waits up to `wait_ms` until none of them is left: a session whose entry
-- in pg_stat_activity is gone has aborted its transaction (its process may linger a moment).
-- Returns the sessions still there then ('' when none): pid, application_name, state, wait
-- event and query.
DROP FUNCTION IF EXISTS ferry.end_fenced_sessions(bigint);
CREATE FUNCTION ferry.end_fenced_sessions(wait_ms bigint) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  pids int[];
  left_running text;
  give_up timestamptz := clock_timestamp() + wait_ms * interval '1 millisecond';
BEGIN
  PERFORM ferry.require_replication('end sessions at Ferry''s fence');
  -- A transaction prepared before the fence may have passed the guard; COMMIT PREPARED would
  -- land after the marker. Ferry does not decide it: the switchover stops, naming it.
  IF EXISTS (SELECT 1 FROM pg_prepared_xacts
              WHERE database = current_database() AND prepared < statement_timestamp()) THEN
    RETURN (SELECT 'prepared transaction(s) ' || string_agg(format('%L', gid), ', ') ||
                   ': commit or roll them back first'
              FROM pg_prepared_xacts WHERE database = current_database());
  END IF;
  -- Every session with a transaction open since before the fence, background workers too;
  -- spared: this session and Ferry's own capture and fence sessions (by their exact names).
  SELECT coalesce(array_agg(pid), '{}') INTO pids FROM pg_stat_activity
   WHERE datname = current_database() AND pid <> pg_backend_pid() AND
         backend_type IN ('client backend', 'background worker') AND
         xact_start < statement_timestamp() AND
         coalesce(application_name, '') NOT IN ('ferry_capture', 'ferry_fence');
  PERFORM pg_terminate_backend(pid) FROM unnest(pids) AS pid;
  LOOP
    PERFORM pg_stat_clear_snapshot();  -- pg_stat_activity is read once per transaction otherwise
    SELECT string_agg(format('pid %s (application %L, %s, waiting on %s, query %L)', a.pid,
                             a.application_name, a.state, coalesce(a.wait_event, 'nothing'),
                             left(a.query, 200)), '; ')
      INTO left_running FROM pg_stat_activity a WHERE a.pid = ANY (pids);
    EXIT WHEN left_running IS NULL OR clock_timestamp() >= give_up;
    PERFORM pg_sleep(0.005);
  END LOOP;
  RETURN coalesce(left_running, '');
END
$fn$;

-- A re-snapshot's marker ("ferry.resnapshot", ferryctl resnapshot): called by the capture role
-- in the transaction that copied the table under a SHARE lock; the copy is staged by ferryd.
CREATE OR REPLACE FUNCTION ferry.emit_resnapshot(table_schema text, table_name text, copy_id text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  PERFORM ferry.require_replication('re-snapshot a table');
  IF copy_id IS NULL OR copy_id !~ '^[0-9a-f]{32}$' THEN
    RAISE EXCEPTION 'malformed re-snapshot id' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM ferry.sign_and_emit('ferry.resnapshot', jsonb_build_object(
    'v', 1, 'schema', table_schema, 'name', table_name, 'id', copy_id)::text);
END
$fn$;

CREATE OR REPLACE FUNCTION ferry.ddl_caller() RETURNS event_trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM pg_catalog.set_config('ferry.ddl_caller', pg_catalog.jsonb_build_object(
    'search_path', pg_catalog.current_setting('search_path'), 'role', current_user)::text, true);
END
$fn$;

CREATE OR REPLACE FUNCTION ferry.capture_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  obj record;
  kept boolean := false;
  tables jsonb := '[]';
BEGIN
  FOR obj IN SELECT * FROM pg_event_trigger_dropped_objects() WHERE original LOOP
    IF obj.is_temporary OR obj.schema_name = 'ferry' THEN CONTINUE; END IF;
    kept := true;
    IF obj.object_type IN ('table', 'foreign table', 'materialized view') THEN
      tables := tables || jsonb_build_object('schema', obj.schema_name, 'name', obj.object_name);
    END IF;
  END LOOP;
  PERFORM set_config('ferry.ddl_dropped',
                     jsonb_build_object('kept', kept, 'tables', tables)::text, true);
END
$fn$;

CREATE OR REPLACE FUNCTION ferry.capture_ddl() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  caller jsonb;
  dropped jsonb;
  state jsonb;
  run text;
  n int;
  cmd record;
  rel record;
  kept boolean := false;
  tables jsonb := '[]';
  who text;
  target oid;
  query text := current_query();
BEGIN
  IF tg_tag LIKE '% PUBLICATION' OR tg_tag LIKE '% SUBSCRIPTION' THEN RETURN; END IF;
  -- Which command with this tag of the client's query this is (a query may hold several).
  run := md5(current_query()) || ' ' || statement_timestamp()::text;
  state := coalesce(nullif(current_setting('ferry.ddl_run', true), ''), '{}')::jsonb;
  IF state->>'run' IS DISTINCT FROM run THEN
    state := jsonb_build_object('run', run, 'n', '{}'::jsonb);
  END IF;
  n := coalesce((state->'n'->>tg_tag)::int, 0) + 1;
  state := jsonb_set(state, ARRAY['n', tg_tag], to_jsonb(n));
  PERFORM set_config('ferry.ddl_run', state::text, false);

  dropped := coalesce(nullif(current_setting('ferry.ddl_dropped', true), ''), '{}')::jsonb;
  PERFORM set_config('ferry.ddl_dropped', '', true);
  IF coalesce((dropped->>'kept')::boolean, false) THEN
    kept := true;
    tables := tables || coalesce(dropped->'tables', '[]');
  END IF;
  FOR cmd IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
    IF cmd.in_extension OR cmd.schema_name = 'ferry' OR cmd.schema_name = 'pg_temp' OR
       cmd.schema_name LIKE 'pg\_temp\_%' OR cmd.schema_name LIKE 'pg\_toast%' THEN
      CONTINUE;
    END IF;
    kept := true;
    -- The relation the command is about: an index's, a trigger's, a policy's, a rule's or a
    -- constraint's table, or the relation itself.
    target := CASE cmd.classid
      WHEN 'pg_class'::regclass THEN
        coalesce((SELECT indrelid FROM pg_index WHERE indexrelid = cmd.objid), cmd.objid)
      WHEN 'pg_trigger'::regclass THEN (SELECT tgrelid FROM pg_trigger WHERE oid = cmd.objid)
      WHEN 'pg_policy'::regclass THEN (SELECT polrelid FROM pg_policy WHERE oid = cmd.objid)
      WHEN 'pg_rewrite'::regclass THEN (SELECT ev_class FROM pg_rewrite WHERE oid = cmd.objid)
      WHEN 'pg_constraint'::regclass THEN
        (SELECT nullif(conrelid, 0) FROM pg_constraint WHERE oid = cmd.objid)
      END;
    IF target IS NOT NULL THEN
      SELECT n.nspname, c.relname, c.relkind INTO rel
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = target;
      IF FOUND AND rel.relkind IN ('r', 'p', 'f', 'm', 'v', 'S') AND NOT tables @>
           jsonb_build_array(jsonb_build_object('schema', rel.nspname, 'name', rel.relname)) THEN
        tables := tables || jsonb_build_object('schema', rel.nspname, 'name', rel.relname);
      END IF;
    END IF;
  END LOOP;
  IF NOT kept THEN RETURN; END IF;

  caller := coalesce(nullif(current_setting('ferry.ddl_caller', true), ''), '{}')::jsonb;
  who := caller->>'role';
  IF who IS NULL OR NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = who) OR
     NOT pg_has_role(session_user, who, 'MEMBER') THEN
    who := session_user;
  END IF;
  -- A query text over 1 MiB is not sent: the standby stops the tables it names instead.
  PERFORM ferry.sign_and_emit('ferry.ddl', jsonb_build_object(
    'v', 1, 'tag', tg_tag, 'ordinal', n,
    'query', CASE WHEN octet_length(query) <= 1048576 THEN query ELSE '' END,
    'query_bytes', octet_length(query),
    'backslash_quotes', current_setting('standard_conforming_strings') <> 'on',
    'search_path', coalesce(caller->>'search_path', ''), 'role', who,
    'tables', tables)::text);

  -- New partitions get the trigger that reports their TRUNCATE (ferry.capture_truncate), new
  -- tables the fence's trigger.
  IF tg_tag IN ('CREATE TABLE', 'ALTER TABLE', 'CREATE TABLE AS', 'SELECT INTO') THEN
    PERFORM ferry.add_truncate_triggers();
    PERFORM ferry.add_fence_triggers();
  END IF;
END
$fn$;

CREATE OR REPLACE FUNCTION ferry.capture_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  root record;
BEGIN
  SELECT n.nspname, c.relname INTO root FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = pg_partition_root(TG_RELID);
  PERFORM ferry.sign_and_emit('ferry.truncate', jsonb_build_object(
    'v', 1, 'schema', TG_TABLE_SCHEMA, 'name', TG_TABLE_NAME, 'root_schema', root.nspname,
    'root_name', root.relname)::text);
  RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION ferry.add_truncate_triggers() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  part oid;
  saved_role text := current_setting('session_replication_role');
BEGIN
  PERFORM set_config('session_replication_role', 'replica', true);
  FOR part IN SELECT c.oid FROM pg_class c
               WHERE c.relispartition AND c.relkind = 'r' AND c.relpersistence = 'p' AND NOT EXISTS (
                 SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND
                                                  t.tgname = 'ferry_capture_truncate') LOOP
    EXECUTE format('CREATE TRIGGER ferry_capture_truncate AFTER TRUNCATE ON %s FOR EACH '
                   'STATEMENT EXECUTE FUNCTION ferry.capture_truncate()', part::regclass);
  END LOOP;
  PERFORM set_config('session_replication_role', saved_role, true);
END
$fn$;
REVOKE ALL ON FUNCTION ferry.add_truncate_triggers() FROM PUBLIC;

-- For the capture role at start (partitions created by apply while this region was a standby).
CREATE OR REPLACE FUNCTION ferry.ensure_truncate_triggers() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  PERFORM ferry.require_replication('add Ferry''s TRUNCATE triggers');
  PERFORM ferry.add_truncate_triggers();
  PERFORM ferry.add_fence_triggers();
END
$fn$;

DO $do$
DECLARE
  k bytea;
  inner_pad bytea;
  outer_pad bytea;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM ferry.capture_key) THEN
    k := decode(md5(gen_random_uuid()::text) || md5(gen_random_uuid()::text), 'hex');
    inner_pad := k || decode(repeat('00', 32), 'hex');
    outer_pad := inner_pad;
    FOR i IN 0..63 LOOP
      inner_pad := set_byte(inner_pad, i, get_byte(inner_pad, i) # 54);
      outer_pad := set_byte(outer_pad, i, get_byte(outer_pad, i) # 92);
    END LOOP;
    INSERT INTO ferry.capture_key VALUES (1, k, inner_pad, outer_pad);
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'ferry_ddl_0_drop') THEN
    CREATE EVENT TRIGGER ferry_ddl_0_drop ON sql_drop EXECUTE FUNCTION ferry.capture_drop();
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'ferry_ddl_1_caller') THEN
    CREATE EVENT TRIGGER ferry_ddl_1_caller ON ddl_command_end
      EXECUTE FUNCTION ferry.ddl_caller();
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'ferry_ddl_2_capture') THEN
    CREATE EVENT TRIGGER ferry_ddl_2_capture ON ddl_command_end
      EXECUTE FUNCTION ferry.capture_ddl();
  END IF;
END
$do$;
ALTER EVENT TRIGGER ferry_ddl_0_drop ENABLE;
ALTER EVENT TRIGGER ferry_ddl_1_caller ENABLE;
ALTER EVENT TRIGGER ferry_ddl_2_capture ENABLE;
-- The quarantine (docs/operations.md, "Rejoin"): every change a former primary committed and
-- never shipped, kept on the new primary by `ferryctl rejoin` until an operator reapplies or
-- discards it (`ferryctl quarantine`). Unlike Ferry's other tables it replicates (the capture
-- lets it through), so it survives the next switchover. JSON values are kept as text.
CREATE TABLE IF NOT EXISTS ferry.quarantine (
  id bigint PRIMARY KEY,
  source_region text NOT NULL,
  epoch bigint NOT NULL,
  xact text NOT NULL,
  commit_position text NOT NULL,
  committed_at timestamptz,
  table_schema text NOT NULL,
  table_name text NOT NULL,
  op text NOT NULL CHECK (op IN ('insert', 'update', 'delete', 'truncate', 'anomaly',
                                 'object_put', 'object_delete')),
  key text,
  after text,
  old_primary_row text,
  current_row text,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'reapplied', 'discarded')),
  decided_at timestamptz,
  note text,
  log_seq bigint NOT NULL,      -- the record of the old primary's outbound log
  change_index int NOT NULL,    -- the change's place in its source transaction
  kept_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (source_region, epoch, log_seq, change_index));
REVOKE ALL ON ferry.quarantine FROM PUBLIC;
-- v10: a bucket's object entries (docs/objects.md, "Rejoin"); a table made by v9 takes them too.
ALTER TABLE ferry.quarantine DROP CONSTRAINT IF EXISTS quarantine_op_check;
ALTER TABLE ferry.quarantine ADD CONSTRAINT quarantine_op_check CHECK (op IN ('insert', 'update',
  'delete', 'truncate', 'anomaly', 'object_put', 'object_delete'));

SELECT ferry.add_truncate_triggers();
SELECT ferry.add_fence_triggers();
COMMENT ON FUNCTION ferry.capture_ddl() IS 'ferry ddl capture v10';
COMMIT;
