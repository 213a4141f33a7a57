"""The SVG bar charts: they scale with their container and carry their numbers as a table."""

from __future__ import annotations

import re

from reports.charts import bar_chart


class BarChartTests:
    def test_it_fills_its_container_instead_of_a_fixed_pixel_width(self) -> None:
        html = str(bar_chart([("P0", 3), ("P1", 12)], title="Queue depth"))
        svg = re.search(r"<svg[^>]*>", html)
        assert svg is not None
        assert 'width="100%"' in svg.group(0) and "viewBox" not in svg.group(0)
        assert 'width="78.00%"' in html  # the largest bar, in % of the chart's width

    def test_the_title_names_the_chart_and_captions_a_table_of_every_number(self) -> None:
        html = str(bar_chart([("remove", 4), ("no_action", 1.5)], title="Decisions by outcome"))
        caption_id = re.search(r'<figcaption[^>]*id="([^"]+)"', html)
        assert caption_id is not None
        assert f'role="img" aria-labelledby="{caption_id.group(1)}"' in html
        assert "<caption>Decisions by outcome</caption>" in html
        assert '<th scope="row">remove</th><td>4</td>' in html
        assert '<th scope="row">no_action</th><td>1.5</td>' in html

    def test_it_escapes_labels_and_titles(self) -> None:
        html = str(bar_chart([('<b>"x"</b>', 1)], title="A & <B>"))
        assert "<b>" not in html and "A &amp; &lt;B&gt;" in html
        assert "&lt;b&gt;&quot;x&quot;&lt;/b&gt;" in html

    def test_an_empty_period_says_so_to_everyone(self) -> None:
        html = str(bar_chart([], title="Flags per day"))
        assert "No data in this period." in html and "<table" not in html
        labelled = re.search(r'aria-labelledby="([^"]+)"', html)
        assert labelled is not None
        for ref in labelled.group(1).split():
            assert f'id="{ref}"' in html

    def test_it_skips_values_that_are_not_numbers(self) -> None:
        html = str(bar_chart([("ok", 2), ("unknown", None)], title="t"))  # type: ignore[list-item]
        assert "unknown" not in html and '<th scope="row">ok</th>' in html
