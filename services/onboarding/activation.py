"""The activation predicate (SPEC 4) asked of its three sources at once, each call with its deadline. A source
that does not answer makes the whole answer UNAVAILABLE naming it, never a false "missing"."""

from __future__ import annotations

import asyncio
import logging
from typing import TypeVar

from services.common.errors import FailedPrecondition, ServiceError, Unavailable
from services.onboarding import policy
from services.onboarding.clients import Clients
from services.onboarding.policy import Evaluation, Skipped, State

log = logging.getLogger("aos.onboarding")
T = TypeVar("T")


def _answer(answer: T | BaseException) -> T | None:
    return None if isinstance(answer, BaseException) else answer


async def _ask(clients: Clients, tenant_id: str) -> tuple[Evaluation, list[str]]:
    """The predicate over whatever the sources answered (an unanswered requirement is "unknown"), and the names
    of the sources that did not answer."""
    answers = await asyncio.gather(
        clients.account_evidence(tenant_id),
        clients.key_evidence(tenant_id),
        clients.connector_evidence(tenant_id),
        return_exceptions=True,
    )
    for answer in answers:
        if isinstance(answer, BaseException) and not isinstance(answer, ServiceError):
            raise answer
    account, keys, integrations = _answer(answers[0]), _answer(answers[1]), _answer(answers[2])
    evaluation = policy.evaluate(
        {
            "project_ready": None if account is None else account.has_active_project,
            "key_ready": None if keys is None else keys.has_valid_key,
            "connector_validated": None if integrations is None else integrations.has_validated_connector,
            "sdk_attested": None if account is None else account.has_attestation,
        }
    )
    down = [peer.name for peer, a in zip(clients.peers(), answers, strict=True) if isinstance(a, BaseException)]
    return evaluation, down


async def evaluate(clients: Clients, tenant_id: str) -> Evaluation:
    evaluation, down = await _ask(clients, tenant_id)
    if down:
        raise Unavailable(
            f"activation evidence unavailable from {', '.join(down)}",
            reason="EVIDENCE_UNAVAILABLE",
            metadata={"dependency": ",".join(down)} | {name: status for name, status, _ in evaluation.requirements},
        )
    return evaluation


def incomplete(evaluation: Evaluation) -> FailedPrecondition:
    missing = evaluation.verdict.missing
    return FailedPrecondition(
        policy.failure_message(missing),
        reason="ACTIVATION_INCOMPLETE",
        metadata={"missing": ",".join(missing)},
        violations=[("ACTIVATION", m, f"{m} is not met") for m in missing],
    )


async def promotion(clients: Clients, tenant_id: str, reached: State) -> Evaluation | None:
    """The passing evaluation that promotes a tenant a move leaves at SDK_CONNECTED. Best effort: None when the
    move lands elsewhere, or the evidence is incomplete or unavailable (the next evidence tries again)."""
    if reached != State.SDK_CONNECTED:
        return None
    try:
        evaluation = await evaluate(clients, tenant_id)
    except Unavailable as exc:
        log.info("no promotion of %s: %s", tenant_id, exc.message)
        return None
    if not evaluation.verdict.passed:
        log.info("no promotion of %s: %s", tenant_id, policy.failure_message(evaluation.verdict.missing))
        return None
    return evaluation


async def skipped(clients: Clients, tenant_id: str) -> Skipped:
    """For the override's audit row, which must not pass an unknown requirement off as met (SPEC 3.4): the
    override itself does not need the predicate, so a source that is down does not stop it."""
    evaluation, _ = await _ask(clients, tenant_id)
    of = {status: [name for name, s, _ in evaluation.requirements if s == status] for status in ("missing", "unknown")}
    return Skipped(of["missing"], of["unknown"])
