from __future__ import annotations

import time
from typing import Any, TypeAlias

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aos.api_keys.v1 import api_keys_service_pb2 as rpc
from aos.api_keys.v1 import api_keys_service_pb2_grpc
from aos.onboarding.v1 import onboarding_pb2
from aos.onboarding.v1.onboarding_service_pb2 import NotifyEvidenceRequest as Evidence
from services.api_keys import lifecycle, repository, responses
from services.api_keys.clients import Account
from services.api_keys.models import ApiKey
from services.api_keys.verify import Verifier
from services.common import db, notify, paging, validation
from services.common.interceptors import request_id
from services.common.principal import MANAGERS, READERS, caller
from services.common.server import created

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
# The legacy tenant listing is one page of at most this many keys.
TENANT_LIST = paging.Page(1000)


class ApiKeysServicer(api_keys_service_pb2_grpc.ApiKeysServiceServicer):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        reads: db.Reads,
        account: Account,
        verifier: Verifier,
        onboarding: notify.Peer,
    ) -> None:
        self._sessions, self._reads, self._account, self._verifier = sessions, reads, account, verifier
        self._onboarding = onboarding

    def _changed(self, key: ApiKey) -> None:
        """After the commit: this replica's cache forgets the key, onboarding's gate soon too."""
        self._verifier.invalidate(f"key:{key.id}")
        self._onboarding.tell(_evidence(key, onboarding_pb2.EVIDENCE_KIND_API_KEY_CHANGED), key.tenant_id)

    async def CreateApiKey(self, request: rpc.CreateApiKeyRequest, context: Context) -> rpc.CreateApiKeyResponse:
        who = caller(context)
        who.require_role(*MANAGERS)
        new, secret = responses.new_key(request, who)
        who.require_scopes(new.permissions)
        tenant = await self._account.tenant(new.tenant_id)  # call out first; never inside the transaction
        async with self._sessions.begin() as session:
            key, fresh, first = await lifecycle.create(session, who, new, tenant)
        evidence = _evidence(key, onboarding_pb2.EVIDENCE_KIND_API_KEY_CREATED)
        if first:  # moves the tenant to API_KEY_CREATED, which the client's next call (the handshake) needs
            await self._onboarding.wait(evidence, key.tenant_id)
        elif fresh:
            self._onboarding.tell(evidence, key.tenant_id)
        await created(context)
        # A retry gets the key without its secret: only the first response carried it.
        return responses.created(key, secret if fresh else "")

    async def GetApiKey(self, request: rpc.GetApiKeyRequest, context: Context) -> rpc.GetApiKeyResponse:
        who = caller(context)
        who.require_role(*READERS)
        async with self._reads() as reader:
            key = await repository.key(reader, who.tenant(), request.key_id)
        return rpc.GetApiKeyResponse(**responses.api_key_fields(key))

    async def ListApiKeys(self, request: rpc.ListApiKeysRequest, context: Context) -> rpc.ListApiKeysResponse:
        who = caller(context)
        who.require_role(*READERS)
        tenant_id = who.tenant()
        status, page = responses.list_page(request)
        async with self._reads() as reader:
            rows, total = await repository.list_keys(reader, tenant_id, status, page)
        items, token, more = page.cut(rows)
        return rpc.ListApiKeysResponse(
            items=[responses.api_key_pb(k) for k in items],
            total=total,
            has_more=more,
            filters_applied={"tenant_id": tenant_id} | ({"status": status} if status else {}),
            next_page_token=token,
        )

    # The legacy URLs of the three RPCs above: the same calls, answering the legacy bodies (SPEC 2.3, 2.4).
    async def CreateTenantApiKey(
        self, request: rpc.CreateTenantApiKeyRequest, context: Context
    ) -> rpc.CreateTenantApiKeyResponse:
        same = rpc.CreateApiKeyRequest.FromString(request.SerializeToString())  # the same fields and numbers
        return responses.legacy_created(await self.CreateApiKey(same, context))

    async def GetLegacyApiKey(
        self, request: rpc.GetLegacyApiKeyRequest, context: Context
    ) -> rpc.GetLegacyApiKeyResponse:
        return responses.legacy_detail(await self.GetApiKey(rpc.GetApiKeyRequest(key_id=request.key_id), context))

    async def ListLegacyApiKeys(
        self, request: rpc.ListLegacyApiKeysRequest, context: Context
    ) -> rpc.ListLegacyApiKeysResponse:
        same = rpc.ListApiKeysRequest(status=request.status, limit=request.limit, offset=request.offset)
        return responses.legacy_list(await self.ListApiKeys(same, context))

    async def ListTenantApiKeys(
        self, request: rpc.ListTenantApiKeysRequest, context: Context
    ) -> rpc.ListTenantApiKeysResponse:
        who = caller(context)
        who.require_role(*READERS)
        status = None if request.include_revoked else repository.UNREVOKED
        async with self._reads() as reader:
            rows, _ = await repository.list_keys(reader, who.tenant(), status, TENANT_LIST)
        return responses.tenant_list(TENANT_LIST.cut(rows)[0])

    async def ListPublicApiKeys(
        self, request: rpc.ListPublicApiKeysRequest, context: Context
    ) -> rpc.ListPublicApiKeysResponse:
        who = caller(context)
        who.require_role(*READERS)
        status, page = responses.public_page(request)
        async with self._reads() as reader:
            rows, total = await repository.list_keys(reader, who.tenant(), status, page)
        correlation = str(dict(context.invocation_metadata() or ()).get("x-correlation-id", ""))
        return responses.public_list(page.cut(rows)[0], total, page.size, page.offset, request_id.get(), correlation)

    async def RevokeApiKey(self, request: rpc.RevokeApiKeyRequest, context: Context) -> rpc.RevokeApiKeyResponse:
        who = caller(context)
        who.require_role(*MANAGERS)
        tenant_id = who.tenant()
        with responses.unprocessable():
            reason = validation.length("reason", request.reason or "Manual revocation", 1, 255)
        async with self._sessions.begin() as session:
            key = await lifecycle.revoke(session, who, tenant_id, request.key_id, reason)
        self._changed(key)
        return responses.revoked(key, request_id.get())

    async def RotateApiKey(self, request: rpc.RotateApiKeyRequest, context: Context) -> rpc.RotateApiKeyResponse:
        who = caller(context)
        who.require_role(*MANAGERS)
        who.require_scopes(["keys:revoke"])  # rotation also retires the old key
        tenant_id, grace = who.tenant(), responses.grace(request)
        tenant = await self._account.tenant(tenant_id)  # call out first; never inside the transaction
        async with self._sessions.begin() as session:
            old, new, secret = await lifecycle.rotate(session, who, tenant_id, request.key_id, grace, tenant)
        self._changed(old)
        return rpc.RotateApiKeyResponse(
            api_key=responses.api_key_pb(new), key=secret, previous=responses.api_key_pb(old)
        )

    async def EnableApiKey(self, request: rpc.EnableApiKeyRequest, context: Context) -> rpc.EnableApiKeyResponse:
        who = caller(context)
        who.require_role(*MANAGERS)
        tenant_id = who.tenant()
        tenant = await self._account.tenant(tenant_id)  # call out first; never inside the transaction
        async with self._sessions.begin() as session:
            key = await lifecycle.enable(session, who, tenant_id, request.key_id, tenant)
        self._changed(key)
        return rpc.EnableApiKeyResponse(api_key=responses.api_key_pb(key))

    async def DisableApiKey(self, request: rpc.DisableApiKeyRequest, context: Context) -> rpc.DisableApiKeyResponse:
        who = caller(context)
        who.require_role(*MANAGERS)
        async with self._sessions.begin() as session:
            key = await lifecycle.disable(session, who, who.tenant(), request.key_id)
        self._changed(key)
        return rpc.DisableApiKeyResponse(api_key=responses.api_key_pb(key))

    async def VerifyApiKey(self, request: rpc.VerifyApiKeyRequest, context: Context) -> rpc.VerifyApiKeyResponse:
        return await self._verifier.verify(request.secret)

    async def RecordApiKeyUsage(
        self, request: rpc.RecordApiKeyUsageRequest, context: Context
    ) -> rpc.RecordApiKeyUsageResponse:
        uses = [
            (validation.length("key_id", use.key_id, 1, 36), use.requests, use.last_used_at.ToNanoseconds() / 1e9)
            for use in request.usage
            if use.requests
        ]
        for key_id, requests, at in uses:
            self._verifier.add_usage(key_id, requests, at or time.time())
        return rpc.RecordApiKeyUsageResponse()

    async def GetActivationEvidence(
        self, request: rpc.GetActivationEvidenceRequest, context: Context
    ) -> rpc.GetActivationEvidenceResponse:
        tenant_id = validation.length("tenant_id", request.tenant_id, 1, 36)
        async with self._reads() as reader:
            valid = await repository.valid_keys(reader, tenant_id)
        return rpc.GetActivationEvidenceResponse(has_valid_key=valid > 0, valid_keys=valid)


def _evidence(key: ApiKey, kind: onboarding_pb2.EvidenceKind.ValueType) -> Evidence:
    return Evidence(tenant_id=key.tenant_id, kind=kind, key_id=key.id)
