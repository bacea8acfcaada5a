"""The client side of a gateway file: who may send orders, who receives drop copies.

Read like a counterparty sheet: each client and each drop-copy consumer is a CompID the
gateway accepts, with an optional username and password (the password itself never in
the file: the name of the environment variable that holds it).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

CompId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,32}$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClientConfig(_Strict):
    """An institutional client: its orders are booked to ``comp_id`` as the account unless
    an order names one."""

    comp_id: CompId
    username: str | None = Field(default=None, description="Username(553) it must log on with")
    password_env: EnvName | None = Field(
        default=None, description="the environment variable holding its Password(554)"
    )


class DropCopyConfig(_Strict):
    """A drop-copy consumer: a copy of every execution, or only of the accounts or venues
    listed."""

    comp_id: CompId
    username: str | None = None
    password_env: EnvName | None = None
    accounts: list[str] | None = Field(default=None, description="only these accounts")
    venues: list[str] | None = Field(default=None, description="only these venues")


class ClientAcceptorConfig(_Strict):
    """Where clients and consumers connect, and as whom the gateway answers."""

    comp_id: CompId = Field(default="CMC", description="the gateway's CompID toward them")
    host: str = Field(default="127.0.0.1", description="the address to listen on")
    port: int = Field(ge=1, le=65535, description="clients connect here")
    drop_copy_port: int | None = Field(
        default=None, ge=1, le=65535, description="consumers connect here (default: port)"
    )
    heartbeat_s: int = Field(default=30, ge=1)
    clients: list[ClientConfig] = Field(default_factory=list)
    drop_copies: list[DropCopyConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct(self) -> ClientAcceptorConfig:
        ids = [c.comp_id for c in self.clients] + [d.comp_id for d in self.drop_copies]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(
                f"CompIDs {twice} appear twice among clients and drop copies: one session "
                "per CompID; give each its own"
            )
        if self.comp_id in ids:
            raise ValueError(f"comp_id {self.comp_id} is the gateway's own; a client needs another")
        return self
