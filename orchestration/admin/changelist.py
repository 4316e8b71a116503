"""A change list's query string judged before it can fail as a 500.

Django's admin turns a lookup it cannot build from the query string (``?id__gt=abc``) into its
"invalid lookup" answer (a redirect to ``?e=1``). A date lookup with a year outside 1-9999
(``?created_at__year=99999``, ``=0``, ``=-5``) builds, and fails only when the list is counted,
as ``ValueError: year 99999 is out of range``: a 500 on every list with a date field and no date
hierarchy, Django's own user list included. Such a failure of counting the list is answered as
any other lookup the list cannot serve.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.http import HttpRequest


class LookupCheckedChangeList(ChangeList):
    def get_results(self, request: HttpRequest) -> None:
        try:
            super().get_results(request)
        except (ValueError, OverflowError) as error:
            raise IncorrectLookupParameters(error) from error


def _lookup_checked(self: admin.ModelAdmin[Any], request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
    return LookupCheckedChangeList


def changelists_check_lookups() -> None:
    """Every model admin's change list (ours and Django's own) is a ``LookupCheckedChangeList``."""
    admin.ModelAdmin.get_changelist = _lookup_checked  # type: ignore[method-assign]
