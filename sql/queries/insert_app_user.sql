-- One user of a tenant (service operation: bypasses the admins-only policy by running as owner).
INSERT INTO app_users (user_id, tenant_id, role, email, login_role)
VALUES (%(user_id)s, %(tenant_id)s, %(role)s, %(email)s, %(login_role)s)
