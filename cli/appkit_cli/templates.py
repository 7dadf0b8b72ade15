"""Files ``appkit init`` writes: the Supabase CLI's layout and config format."""

CONFIG_TOML = """\
# A Supabase CLI project config. `appkit dev` / `appkit start` read it, and so does
# `supabase start`: both tools share this folder.
project_id = "{project_id}"

[api]
enabled = true
# Port of the API gateway: /rest/v1, /auth/v1, /storage/v1, /realtime/v1.
port = 54321
# Schemas exposed through the REST API ("appkit" holds appkit's organizations, jobs, ...).
schemas = ["public", "graphql_public", "appkit"]
# Extra schemas on the search_path of every request.
extra_search_path = ["public", "extensions"]
# Maximum rows a REST response returns.
max_rows = 1000

[db]
# Port of the Postgres database.
port = 54322
major_version = 17

[db.migrations]
enabled = true

[db.seed]
enabled = true
sql_paths = ["./seed.sql"]

[realtime]
enabled = true

[studio]
# The web console (`appkit studio`) that `appkit dev` / `appkit start` serve on 127.0.0.1.
enabled = true
port = 54323

[storage]
enabled = true
file_size_limit = "50MiB"

# Buckets created on start, like the Supabase CLI's `seed buckets`.
# [storage.buckets.images]
# public = false
# file_size_limit = "50MiB"
# allowed_mime_types = ["image/png", "image/jpeg"]

[auth]
enabled = true
site_url = "http://127.0.0.1:3000"
additional_redirect_urls = ["https://127.0.0.1:3000"]
# Access token lifetime in seconds (max one week).
jwt_expiry = 3600
enable_refresh_token_rotation = true
refresh_token_reuse_interval = 10
enable_signup = true
enable_anonymous_sign_ins = false
minimum_password_length = 6
# jwt_secret = "env(SUPABASE_AUTH_JWT_SECRET)"
# signing_keys_path = "./signing_keys.json"

[auth.rate_limit]
email_sent = 2
sms_sent = 30
anonymous_users = 30
token_refresh = 150
sign_in_sign_ups = 30
token_verifications = 30

[auth.email]
enable_signup = true
double_confirm_changes = true
enable_confirmations = false
max_frequency = "1s"
otp_length = 6
otp_expiry = 3600

[auth.sms]
enable_signup = false
enable_confirmations = false
template = "Your code is {{{{ .Code }}}}"
max_frequency = "5s"
"""

SEED_SQL = """\
-- Runs after the migrations on the first `appkit start` / `appkit dev` and on
-- `appkit db reset`, in one transaction.
"""

GITIGNORE = """\
# appkit / Supabase CLI local state
.appkit
.branches
.temp
.env
"""
