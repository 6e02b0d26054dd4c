-- Whether the session may administer tenants, users and subscriptions: a superuser, or a login
-- with the privileges of bangkok_owner (whose `service` policies pass RLS on the tenancy tables).
SELECT rolsuper OR pg_has_role(current_user, %(owner_role)s, 'USAGE')
FROM pg_roles
WHERE rolname = current_user
