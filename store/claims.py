"""Work claiming shared by every worker: SKIP LOCKED plus a lease that expires.

A claim is a row's `claimed_by`/`claimed_until`. Rows are picked with `FOR UPDATE SKIP LOCKED`
so concurrent claimers (in one process or many) never take the same row, and a worker that
dies simply lets its lease run out, after which the row is claimable again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Interval,
    String,
    bindparam,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from store.direct import Executor, rows
from store.models import Delivery, Message

Claimable = type[Message] | type[Delivery]


async def claim(
    session: AsyncSession,
    model: Claimable,
    *,
    worker: str,
    lease: dt.timedelta,
    limit: int,
    where: Sequence[ColumnElement[bool]] = (),
    order_by: Sequence[Any] = (),
) -> list[int]:
    """Claim up to `limit` ids matching `where` whose claim is free or expired."""
    rows = await claim_rows(
        session, model, worker=worker, lease=lease, limit=limit, where=where, order_by=order_by
    )
    return sorted(r[0] for r in rows)


async def claim_rows(
    session: AsyncSession,
    model: Claimable,
    *,
    worker: str,
    lease: dt.timedelta,
    limit: int,
    where: Sequence[ColumnElement[bool]] = (),
    order_by: Sequence[Any] = (),
    values: dict[str, Any] | None = None,
    returning: Sequence[Any] = (),
    budget: tuple[Any, int] | None = None,
) -> Sequence[Any]:
    """`claim`, also setting `values` on the claimed rows and returning `returning` columns
    (after the id), all in the one statement: a worker can claim a batch, count an attempt
    and read what it needs in a single round trip. With *budget* (a weight column and a
    total), rows are taken in order while the weights before each stay under the total:
    always at least one, at most `limit`."""
    statement = claim_statement(
        model,
        where=where,
        order_by=order_by,
        values=values,
        returning=returning,
        weight=budget[0] if budget is not None else None,
    )
    return await execute_claim(
        session,
        statement,
        worker=worker,
        lease=lease,
        limit=limit,
        budget=budget[1] if budget is not None else None,
    )


def claim_statement(
    model: Claimable,
    *,
    where: Sequence[ColumnElement[bool]] = (),
    order_by: Sequence[Any] = (),
    values: dict[str, Any] | None = None,
    returning: Sequence[Any] = (),
    weight: Any = None,
) -> Any:
    """The statement of `claim_rows`, its worker, lease, limit and budget left as parameters
    (`execute_claim` fills them): a caller that claims often builds it once. Building it
    with SQLAlchemy costs more CPU than PostgreSQL spends running it."""
    order = [*order_by, model.id]
    weights = [weight.label("weight")] if weight is not None else []
    picked = (
        select(model.id, *weights, *(c.label(f"o{i}") for i, c in enumerate(order)))
        .where(
            *where,
            or_(model.claimed_until.is_(None), model.claimed_until < func.now()),
        )
        .order_by(*order)
        .limit(bindparam("c_limit", type_=Integer))
        .with_for_update(skip_locked=True)
        .cte("picked")
    )
    chosen = select(picked.c.id)
    if weight is not None:  # a window cannot go with FOR UPDATE: it reads what was locked
        before = (
            func.sum(picked.c.weight).over(order_by=[picked.c[f"o{i}"] for i in range(len(order))])
            - picked.c.weight
        )
        running = select(picked.c.id, before.label("before")).subquery("running")
        chosen = select(running.c.id).where(
            running.c.before < bindparam("c_budget", type_=BigInteger)
        )
    return (
        update(model)
        .where(model.id.in_(chosen))
        .values(
            claimed_by=bindparam("c_worker", type_=String),
            claimed_until=func.now() + bindparam("c_lease", type_=Interval),
            **(values or {}),
        )
        .returning(model.id, *returning)
        .execution_options(synchronize_session=False)
    )


async def execute_claim(
    session: Executor,
    statement: Any,
    *,
    worker: str,
    lease: dt.timedelta,
    limit: int,
    budget: int | None = None,
    **params: Any,
) -> Sequence[Any]:
    """Run a `claim_statement` for *worker*; *params* fill the caller's own parameters. On
    the process's own pool (`Database.direct`) the claim commits on its own."""
    values: dict[str, Any] = {"c_worker": worker, "c_lease": lease, "c_limit": limit, **params}
    if budget is not None:
        values["c_budget"] = budget
    return await rows(session, statement, values)


async def release(session: AsyncSession, model: Claimable, ids: Sequence[int], worker: str) -> None:
    """Give rows back (on clean shutdown) so another worker need not wait for the lease."""
    if ids:
        await session.execute(
            update(model)
            .where(model.id.in_(list(ids)), model.claimed_by == worker)
            .values(claimed_by=None, claimed_until=None)
            .execution_options(synchronize_session=False)
        )
