-- The console's page of pending changes (issue 22). approve_change's two
-- people are two database logins (session_user); a login many people share —
-- the console's own (CONSOLE_DATABASE_URL), whose password sits in the
-- worker's environment — is no person, so it may not approve at all.
-- Such a login is made a member of settlement_shared (by `settle migrate`'s
-- embedded console login, or by hand: `grant settlement_shared to <login>`);
-- approve_change refuses it (ST090). Roles are cluster-wide: created once.
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'settlement_shared') then
    create role settlement_shared nologin;
  end if;
end $$;
comment on role settlement_shared is 'Marks a login shared by many people (the console''s database login): it may not approve a change (settlement.approve_change, ST090).';
