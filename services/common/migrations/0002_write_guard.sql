-- Optimistic concurrency. A command reads its aggregate without a lock, decides, and writes in one
-- statement whose guarded writes name the version they read (`where ... and version = <read>`). When
-- a guarded write changes no row, another writer got there first: this fails the whole statement, so
-- nothing of it stays, and the command runs again on the new state.
create function mirador.guard(written bigint) returns boolean
language plpgsql as $$
begin
    if written = 0 then
        raise exception 'the aggregate changed after the command read it'
            using errcode = 'serialization_failure';
    end if;
    return true;
end
$$;
