"""MFA factor rows: fetching a user's factor (locked for update) and deleting one."""

from __future__ import annotations

from psycopg.rows import dict_row

from appkit.local.auth.errors import not_found
from appkit.local.auth.inputs import is_uuid
from appkit.local.auth.users import Conn, Row


async def fetch_factor(conn: Conn, user: Row, factor_id: str) -> Row:
    if not is_uuid(factor_id):
        raise not_found("mfa_factor_not_found", "Factor not found")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("select id, factor_type::text, status::text, secret, phone from auth.mfa_factors"
                          " where id = %s and user_id = %s for update", (factor_id, user["id"]))
        factor = await cur.fetchone()
    if factor is None:
        raise not_found("mfa_factor_not_found", "Factor not found")
    return factor

async def delete_factor(conn: Conn, user: Row, factor_id: str) -> None:
    await conn.execute("delete from auth.mfa_factors where id = %s and user_id = %s", (factor_id, user["id"]))
    await conn.execute(
        "update auth.sessions set aal = 'aal1', factor_id = null where user_id = %s and factor_id = %s",
        (user["id"], factor_id),
    )
