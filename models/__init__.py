"""SQLAlchemy models, split by area. Importing this package registers every table on `Base.metadata`."""
from models.audit import AuditEntry, ErasureCleanup
from models.base import Base
from models.commerce import (COUPON_KINDS, CommissionRate, Coupon, CouponEvent, CouponTemplate, Order, OrderLine,
                             Product)
from models.customers import (
    IDENTITY_KINDS,
    Customer,
    CustomerIdentity,
    CustomerTag,
    Event,
    Follow,
    Tag,
    TagGroup,
)
from models.inbox import CallbackInbox
from models.knowledge import CONTENT_KINDS, Content, Script, ScriptSend, Vocabulary
from models.org import Guide, Store
from models.sidebar import ProfileView
from models.recommend import ProductPair
from models.tasks import GuidePush, JobRun, Playbook, RedDot, Touch
from models.tracking import LinkOpen, TrackedLink
from models.transfers import TRANSFER_STATES, CustomerTransfer

__all__ = [
    "Base", "AuditEntry", "ErasureCleanup", "Store", "Guide", "Customer", "CustomerIdentity", "Follow", "TagGroup", "Tag", "CustomerTag",
    "Event", "Product", "Order", "OrderLine", "CouponTemplate", "Coupon", "CouponEvent", "CommissionRate",
    "COUPON_KINDS", "CallbackInbox", "IDENTITY_KINDS",
    "Script", "Content", "Vocabulary", "ScriptSend", "CONTENT_KINDS",
    "RedDot", "Touch", "Playbook", "GuidePush", "JobRun", "ProfileView",
    "TrackedLink", "LinkOpen", "ProductPair", "CustomerTransfer", "TRANSFER_STATES",
]
