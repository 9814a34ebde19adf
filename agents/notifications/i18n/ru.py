"""The digest in Russian."""

from __future__ import annotations

from agents.notifications.i18n.catalogue import Catalogue, Plural

__all__ = ["RU"]

RU = Catalogue(
    title="<b>Заказы: {cafe}</b>",
    title_part="<b>Заказы: {cafe}</b> (часть {part}/{parts})",
    date_line=Plural(
        one="Дата: {date} · {count} заказ",
        few="Дата: {date} · {count} заказа",
        many="Дата: {date} · {count} заказов",
        other="Дата: {date} · {count} заказа",
    ),
    summary_title="<b>Приготовить</b>",
    summary_more=Plural(
        one="… и ещё {count} позиция",
        few="… и ещё {count} позиции",
        many="… и ещё {count} позиций",
        other="… и ещё {count} позиции",
    ),
    combo="Комбо: {combo} — {price}",
    items="Блюда: {items}",
    notes="Комментарий: <i>{notes}</i>",
    total="<b>Итого: {total}</b>",
)
