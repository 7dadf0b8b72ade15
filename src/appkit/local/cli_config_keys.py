"""Every key name the Supabase CLI's ``config.toml`` schema knows (2.117 and later releases).

A key in this set is never reported as a typo, even where appkit does not read it; taken
from the ``toml``/``json`` tags of the CLI's ``pkg/config`` structs.
"""

from __future__ import annotations

_NAMES = """
    access_key account_sid additional_redirect_urls admin_email alg allow_dynamic_registration
    allowed_cidrs allowed_cidrs_v6 allowed_mime_types analytics anon_key anonymous_users api
    api_key api_secret api_url auth auth0 auth_token authorization_url_path auto_expose_new_tables
    aws_cognito backend before_user_created buckets captcha cert_path clerk client_id content
    content_path crv custom_access_token d db declarative_schema_path default_pool_size
    deno_version domain double_confirm_changes dp dq e edge_runtime effective_cache_size email
    email_optional email_sent enable_anonymous_sign_ins enable_confirmations enable_manual_linking
    enable_refresh_token_rotation enable_signup enabled enroll_enabled entrypoint ethereum
    experimental ext external external_url extra_search_path fail file_size_limit firebase
    format_options from functions gcp_jwt_path gcp_project_id gcp_project_number health_timeout
    hook host iceberg image image_transformation import_map inactivity_timeout inbucket inspect
    inspector_port ip_version is_anonymous iss issuer_url jwks_uri jwt_expiry jwt_issuer jwt_secret
    k key_ops key_path keys kid kty local_smtp logical_decoding_work_mem maintenance_work_mem
    major_version max max_buckets max_catalogs max_client_conn max_connections max_enrolled_factors
    max_frequency max_header_length max_indexes max_locks_per_transaction max_namespaces
    max_parallel_maintenance_workers max_parallel_workers max_parallel_workers_per_gather
    max_replication_slots max_rows max_slot_wal_keep_size max_standby_archive_delay
    max_standby_streaming_delay max_tables max_wal_senders max_wal_size max_worker_processes
    message_service_sid messagebird mfa mfa_verification_attempt migrations minimum_password_length
    n name network_restrictions notification oauth_server objects_path openai_api_key originator
    orioledb_version otp_expiry otp_length p pass passkey password_requirements
    password_verification_attempt pgdelta phone policy pool_mode pooler pop3_port port project_id
    provider public publishable_key q qi query rate_limit realtime redirect_uri ref
    refresh_token_reuse_interval remotes role root_key rp_display_name rp_id rp_origins rules s3
    s3_access_key s3_host s3_protocol s3_region s3_secret_key schema_paths schemas secret
    secret_key secrets secure_password_change seed send_email send_sms sender sender_name
    service_role_key session_replication_role sessions settings shadow_port shared_buffers
    sign_in_sign_ups signing_keys_path site_url skip_nonce_check sms sms_sent smtp smtp_port solana
    sql_paths ssl_enforcement statement_timeout static_files storage studio subject template tenant
    tenant_region test_otp textlocal third_party timebox tls token_refresh token_verifications totp
    track_activity_query_size track_commit_timestamp twilio twilio_verify uri url use user
    user_pool_id user_pool_region vault vector vector_port verify_enabled verify_jwt vonage
    wal_keep_size wal_sender_timeout web3 web_authn webauthn webhooks work_mem workos x y
"""

SUPABASE_CLI_KEYS: frozenset[str] = frozenset(_NAMES.split())
