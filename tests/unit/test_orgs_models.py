"""The organizations models: the role order, role parsing, invitation status, the public surface."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

import appkit.orgs
from appkit import errors
from appkit.orgs import Invitation, Role
from appkit.orgs.models import as_role


def test_role_order() -> None:
    assert [r.value for r in sorted(Role, key=lambda r: r.rank, reverse=True)] == ["owner", "admin", "member", "viewer"]
    assert Role.owner.includes("admin") and Role.admin.includes(Role.admin) and not Role.viewer.includes("member")
    assert as_role("member") is Role.member and Role.parse(Role.viewer) is Role.viewer


@pytest.mark.parametrize("bad", ["Owner", "boss", "", None, 3])
def test_bad_roles(bad: object) -> None:
    with pytest.raises(errors.ValidationError):
        as_role(bad)  # type: ignore[arg-type]


def test_invitation_status() -> None:
    now = datetime.now(UTC)
    base = {"id": uuid4(), "org_id": uuid4(), "role": "member", "created_at": now, "expires_at": now + timedelta(hours=1)}
    assert Invitation.model_validate(base).status == "pending"
    assert Invitation.model_validate({**base, "expires_at": now - timedelta(seconds=1)}).status == "expired"
    assert Invitation.model_validate({**base, "accepted_at": now}).status == "accepted"
    assert Invitation.model_validate({**base, "accepted_at": now, "revoked_at": now}).status == "revoked"


def test_public_surface() -> None:
    assert sorted(appkit.orgs.__all__) == ["AsyncOrgs", "AsyncRbac", "Invitation", "InvitationPreview", "Membership",
                                           "Organization", "Orgs", "Rbac", "Role"]
    for name in appkit.orgs.__all__:
        assert getattr(appkit.orgs, name).__name__ == name
