-- The bank's quiet hours (table settlement.bank_windows, 0012_bank_windows.sql).
--
-- No money request is sent inside a window. claim_transfers asks
-- bank_quiet_until(now, lease) once per batch: when the attempt it would
-- start (its lease: the longest it may be sending) overlaps a window, no
-- transfer of the batch is claimed; each is marked quiet_until the window's
-- end and its job runs again then (add_transfer_jobs_at). After the window
-- the claim is an ordinary one: a transfer never sent gets the new day's
-- Tsymd; one that may have been sent under the old date is asked about and
-- never sent again under it (claim_transfers' sendable).
--
-- Times: a daily window is Korea time (the bank's clock), whatever the
-- settlement time zone; instants come from settlement_meta.now().

-- The active windows that overlap [p_from, p_to), each as an instant range
-- [starts_at, ends_at) (a daily window once per Korean date it touches).
create or replace function settlement.bank_windows_between(p_from timestamptz, p_to timestamptz)
returns table (window_id bigint, starts_at timestamptz, ends_at timestamptz, reason text)
language sql stable as $$
  select w.id, w.starts_at, w.ends_at, w.reason
  from settlement.bank_windows w
  where w.removed_at is null and w.starts_at is not null and w.starts_at < p_to and w.ends_at > p_from
  union all
  select w.id, x.s, x.e, w.reason
  from settlement.bank_windows w
  cross join lateral generate_series((p_from at time zone 'Asia/Seoul')::date - 1, (p_to at time zone 'Asia/Seoul')::date, interval '1 day') d(day)
  cross join lateral (
    select (d.day::date + w.daily_from) at time zone 'Asia/Seoul' as s,
           (d.day::date + w.daily_until + case when w.daily_until < w.daily_from then interval '1 day' else interval '0' end) at time zone 'Asia/Seoul' as e) x
  where w.removed_at is null and w.daily_from is not null and x.s < p_to and x.e > p_from
$$;
comment on function settlement.bank_windows_between is 'The bank''s quiet windows (active rows of settlement.bank_windows) overlapping [p_from, p_to), as instant ranges; a daily window once per Korean date.';

-- When an attempt that starts at p_from and may send for p_span could start
-- without meeting a window: null if it can start now, else the end of the
-- window it would meet (windows back to back or overlapping are one quiet
-- time: after the last of them there is p_span free).
create or replace function settlement.bank_quiet_until(p_from timestamptz, p_span interval)
returns timestamptz
language plpgsql stable as $$
declare
  v_at timestamptz := p_from;
  v_next timestamptz;
  v_until timestamptz;
begin
  for i in 1 .. 100 loop
    select max(w.ends_at) into v_next from settlement.bank_windows_between(v_at, v_at + p_span) w;
    exit when v_next is null;
    v_until := v_next;
    v_at := v_next;
  end loop;
  return v_until;
end $$;
comment on function settlement.bank_quiet_until is 'null when an attempt starting at p_from and sending for up to p_span meets none of the bank''s quiet windows; else when it may start (the end of the quiet time it would meet).';

-- Jobs for transfers that wait for the bank: each runs at p_run_at (the key
-- of a job already locked, the claim's own, goes to the new one). When
-- graphile-worker's add_job meets a job with the key that another worker just
-- locked, it adds nothing (see add_stage_job): a job without a key is added
-- then, so no transfer is left without one.
create or replace function settlement.add_transfer_jobs_at(p_ids bigint[], p_run_at timestamptz) returns void
language plpgsql as $$
declare
  v_added bigint[];
  v_missing bigint[];
begin
  select coalesce(array_agg((j.payload ->> 'transfer_id')::bigint), '{}') into v_added
  from graphile_worker.add_jobs(array(
    select row('transfer', json_build_object('transfer_id', x), null, p_run_at, 25, 'transfer:' || x, null, null)::graphile_worker.job_spec
    from unnest(p_ids) x order by x), job_key_preserve_run_at => false) j;
  v_missing := array(select x from unnest(p_ids) x where not x = any(v_added));
  if cardinality(v_missing) > 0 then
    perform graphile_worker.add_jobs(array(
      select row('transfer', json_build_object('transfer_id', x), null, p_run_at, 25, null, null, null)::graphile_worker.job_spec
      from unnest(v_missing) x order by x));
  end if;
end $$;

-- Deferred transfers run again at once (a window was removed or changed: if
-- one still applies, their claims defer them again).
create or replace function settlement.rerun_quiet_transfers() returns integer
language plpgsql as $$
declare
  v_ids bigint[];
begin
  select array_agg(t.id order by t.id) into v_ids from settlement.transfers t
  where t.quiet_until > settlement_meta.now() and t.state in ('pending', 'sending');
  if v_ids is null then
    return 0;
  end if;
  update settlement.transfers t set quiet_until = null where t.id = any(v_ids);
  perform settlement.add_transfer_jobs(v_ids);
  return cardinality(v_ids);
end $$;

------------------------------------------------------------------------------
-- Operators (audited).

-- The daily window, Korea time (p_from > p_until: it spans midnight); both
-- null: no daily window. Refused: one of them null, or both equal (ST100); no
-- reason (ST101).
create or replace function settlement.configure_bank_window(p_from time, p_until time, p_reason text) returns json
language plpgsql as $$
declare
  v_reason text := settlement.action_reason(p_reason);
  v_old settlement.bank_windows;
  v_id bigint;
  v_rerun integer;
begin
  if (p_from is null) <> (p_until is null) or p_from = p_until then
    perform settlement.raise_error('ST100', format('configure_bank_window: give both ends of the daily window (different times, Korea time), or neither for none (got %s to %s)',
                                                   coalesce(p_from::text, 'null'), coalesce(p_until::text, 'null')));
  end if;
  if v_reason is null then
    perform settlement.raise_error('ST101', 'configure_bank_window: a reason is required');
  end if;
  update settlement.bank_windows w set removed_at = settlement_meta.now(), removed_by = session_user
  where w.daily_from is not null and w.removed_at is null
  returning * into v_old;
  if p_from is not null then
    insert into settlement.bank_windows (daily_from, daily_until, reason) values (p_from, p_until, v_reason) returning id into v_id;
  end if;
  v_rerun := settlement.rerun_quiet_transfers();
  perform settlement.audit('configure_bank_window',
    jsonb_build_object('daily_from', p_from::text, 'daily_until', p_until::text),
    jsonb_build_object('window', v_id, 'replaced', v_old.id, 'before',
                       case when v_old.id is not null then format('%s-%s', to_char(v_old.daily_from, 'HH24:MI'), to_char(v_old.daily_until, 'HH24:MI')) end,
                       'transfers_rerun', v_rerun), v_reason);
  return json_build_object('window', v_id, 'replaced', v_old.id, 'transfers_rerun', v_rerun);
end $$;
comment on function settlement.configure_bank_window is 'Operator: the bank''s daily quiet window, Korea time (from > until spans midnight; both null: none). Deferred transfers run again at once. Audited. ST100 bad times, ST101 no reason.';

-- A dated window: no money request from p_starts to p_ends. Refused: no
-- range, an end not after the start or already past, longer than 7 days (a
-- longer stop is a pause) (ST102); no reason (ST101).
create or replace function settlement.add_bank_window(p_starts timestamptz, p_ends timestamptz, p_reason text) returns bigint
language plpgsql as $$
declare
  v_reason text := settlement.action_reason(p_reason);
  v_id bigint;
begin
  if p_starts is null or p_ends is null or p_ends <= p_starts or p_ends <= settlement_meta.now() or p_ends - p_starts > interval '7 days' then
    perform settlement.raise_error('ST102', format('add_bank_window: a window needs a start before its end, an end in the future and at most 7 days (use settle pause for longer); got %s to %s',
                                                   coalesce(settlement.local_time(p_starts), 'null'), coalesce(settlement.local_time(p_ends), 'null')));
  end if;
  if v_reason is null then
    perform settlement.raise_error('ST101', 'add_bank_window: a reason is required');
  end if;
  insert into settlement.bank_windows (starts_at, ends_at, reason) values (p_starts, p_ends, v_reason) returning id into v_id;
  perform settlement.audit('add_bank_window',
    jsonb_build_object('starts_at', settlement.iso_time(p_starts), 'ends_at', settlement.iso_time(p_ends)), jsonb_build_object('window', v_id), v_reason);
  return v_id;
end $$;
comment on function settlement.add_bank_window is 'Operator: a dated quiet window of the bank (no money request from p_starts to p_ends; at most 7 days, ending in the future). Audited. ST102 bad range, ST101 no reason.';

-- Removes a window (the daily one too); deferred transfers run again at once.
-- Refused: unknown or already removed (ST103); no reason (ST101).
create or replace function settlement.remove_bank_window(p_id bigint, p_reason text) returns integer
language plpgsql as $$
declare
  v_reason text := settlement.action_reason(p_reason);
  v_old settlement.bank_windows;
  v_rerun integer;
begin
  if v_reason is null then
    perform settlement.raise_error('ST101', 'remove_bank_window: a reason is required');
  end if;
  update settlement.bank_windows w set removed_at = settlement_meta.now(), removed_by = session_user
  where w.id = p_id and w.removed_at is null returning * into v_old;
  if not found then
    perform settlement.raise_error('ST103', format('remove_bank_window: no active window %s', coalesce(p_id::text, 'null')));
  end if;
  v_rerun := settlement.rerun_quiet_transfers();
  perform settlement.audit('remove_bank_window', jsonb_build_object('window', p_id),
    jsonb_build_object('daily', case when v_old.daily_from is not null then format('%s-%s', to_char(v_old.daily_from, 'HH24:MI'), to_char(v_old.daily_until, 'HH24:MI')) end,
                       'starts_at', settlement.iso_time(v_old.starts_at), 'ends_at', settlement.iso_time(v_old.ends_at), 'transfers_rerun', v_rerun), v_reason);
  return v_rerun;
end $$;
comment on function settlement.remove_bank_window is 'Operator: removes one of the bank''s quiet windows (history kept); deferred transfers run again at once. Audited. ST103 unknown or removed, ST101 no reason.';

-- What a person reads: the daily window and the dated windows not yet over,
-- in the settlement time zone's words, with the next time the bank is quiet.
create or replace function settlement.bank_windows_ahead()
returns table (window_id bigint, daily text, starts text, ends text, reason text, added_by text, added_at text)
language sql stable as $$
  select w.id,
         case when w.daily_from is not null then format('%s-%s KST', to_char(w.daily_from, 'HH24:MI'), to_char(w.daily_until, 'HH24:MI')) end,
         coalesce(settlement.local_time(w.starts_at), settlement.local_time(n.starts_at)),
         coalesce(settlement.local_time(w.ends_at), settlement.local_time(n.ends_at)),
         w.reason, w.added_by, settlement.local_time(w.added_at)
  from settlement.bank_windows w
  left join lateral (
    select b.starts_at, b.ends_at from settlement.bank_windows_between(settlement_meta.now(), settlement_meta.now() + interval '2 days') b
    where b.window_id = w.id order by b.starts_at limit 1) n on w.daily_from is not null
  where w.removed_at is null and (w.daily_from is not null or w.ends_at > settlement_meta.now())
  order by w.daily_from is null, w.starts_at
$$;
comment on function settlement.bank_windows_ahead is 'The bank''s quiet windows in force: the daily one (with its next occurrence) and the dated ones not yet over.';
