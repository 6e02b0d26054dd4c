-- A login for an API client or a loader (bangkok_pipeline.warehouse.access.create_login). CREATE
-- ROLE takes no bound parameters: the name and role are identifiers, the password a literal.
CREATE ROLE {name} LOGIN PASSWORD {password}
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS
    IN ROLE {member_of}
