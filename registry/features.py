"""Every feature whose events the writer may append: importing this registers all projectors and
approvable actions, so no command can ever append an event whose projection is missing."""

from registry.approvals import service as approvals  # noqa: F401
from registry.calendar import service as calendar  # noqa: F401
from registry.listing import service as listing  # noqa: F401
from registry.parties import service as parties  # noqa: F401
from registry.warrants import service as warrants  # noqa: F401
from registry.valuation import service as valuation  # noqa: F401
