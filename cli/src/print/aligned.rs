//! The aligned and wrapped formats, and expanded display (one block per
//! row), laid out as psql 15 lays them out.

use super::style::{style, Rule, Style};
use super::width::{format_lines, prefix_fitting, size, Line};
use super::{Align, Content, Expanded, Format, LineStyle};

/// What the printer learnt that decides the pager: the number of lines
/// psql would estimate, or `usize::MAX` when the table is wider than the
/// terminal.
pub type PagerLines = usize;

fn spaces(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn repeat(out: &mut String, s: &str, n: usize) {
    for _ in 0..n {
        out.push_str(s);
    }
}

/// A rule across the table (`----+----`).
fn horizontal_line(out: &mut String, widths: &[usize], border: u8, rule: &Rule) {
    match border {
        1 => out.push_str(rule.h),
        2 => {
            out.push_str(rule.left);
            out.push_str(rule.h);
        }
        _ => {}
    }
    for (i, &w) in widths.iter().enumerate() {
        repeat(out, rule.h, w);
        if i + 1 < widths.len() {
            if border == 0 {
                out.push(' ');
            } else {
                out.push_str(rule.h);
                out.push_str(rule.mid);
                out.push_str(rule.h);
            }
        }
    }
    match border {
        2 => {
            out.push_str(rule.h);
            out.push_str(rule.right);
        }
        1 => out.push_str(rule.h),
        _ => {}
    }
    out.push('\n');
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Wrap {
    None,
    Wrapped,
    Newline,
}

/// The aligned (or wrapped) format; switches to expanded display in
/// `\x auto` when the table is wider than `columns` (0: unknown).
pub fn text(out: &mut String, c: &Content, columns: usize) -> PagerLines {
    let opt = c.opt;
    let border = opt.border.min(2);
    let st = style(opt.line_style);
    let ncols = c.headers.len();
    let nrows = c.rows.len();

    let mut width_header = vec![0usize; ncols];
    let mut max_width = vec![0usize; ncols];
    let mut width_average = vec![0usize; ncols];
    let mut extra_output_lines = 0usize;
    for (i, h) in c.headers.iter().enumerate() {
        let (w, lines) = size(h);
        max_width[i] = max_width[i].max(w);
        width_header[i] = w;
        extra_output_lines = extra_output_lines.max(lines);
    }
    for row in &c.rows {
        for (i, cell) in row.iter().enumerate() {
            let (w, _) = size(cell);
            max_width[i] = max_width[i].max(w);
            width_average[i] += w;
        }
    }
    if ncols != 0 && nrows != 0 {
        for a in &mut width_average {
            *a /= nrows;
        }
    }
    let mut width_total = match border {
        0 => ncols,
        1 => (ncols * 3).saturating_sub(1),
        _ => ncols * 3 + 1,
    };
    let mut total_header_width = width_total;
    for i in 0..ncols {
        width_total += max_width[i];
        total_header_width += width_header[i];
    }
    let mut width_wrap = max_width.clone();

    if opt.format == Format::Wrapped && columns > 0 && columns >= total_header_width {
        // Narrow, one column at a time, the column whose widest value is
        // furthest above its average, until the table fits.
        while width_total > columns {
            let mut max_ratio = 0.0f64;
            let mut worst = None;
            for i in 0..ncols {
                if width_average[i] != 0 && width_wrap[i] > width_header[i] {
                    let ratio =
                        width_wrap[i] as f64 / width_average[i] as f64 + max_width[i] as f64 * 0.01;
                    if ratio > max_ratio {
                        max_ratio = ratio;
                        worst = Some(i);
                    }
                }
            }
            let Some(worst) = worst else { break };
            width_wrap[worst] -= 1;
            width_total -= 1;
        }
    }

    let too_wide = columns > 0 && (columns < total_header_width || columns < width_total);
    if opt.expanded == Expanded::Auto && too_wide && ncols > 1 {
        return vertical(out, c, columns);
    }

    // The pager estimate: the header's height, then each row's extra
    // lines from newlines and wrapping.
    let pager_lines = if too_wide {
        usize::MAX
    } else {
        for row in &c.rows {
            let mut extra_row = 0;
            for (i, cell) in row.iter().enumerate() {
                let (w, lines) = size(cell);
                if w > 0 && width_wrap[i] > 0 {
                    extra_row = extra_row.max((w - 1) / width_wrap[i] + lines - 1);
                }
            }
            extra_output_lines += extra_row;
        }
        c.pager_lines(false) + extra_output_lines
    };

    if let Some(title) = c.title() {
        let (w, _) = size(title);
        if w < width_total {
            spaces(out, (width_total - w) / 2);
        }
        out.push_str(title);
        out.push('\n');
    }

    if !opt.tuples_only {
        if border == 2 {
            horizontal_line(out, &width_wrap, border, &st.top);
        }
        let header_lines: Vec<Vec<Line>> = c.headers.iter().map(|h| format_lines(h)).collect();
        let mut done = vec![false; ncols];
        let mut remaining = ncols;
        let mut nl = 0;
        while remaining > 0 {
            if border == 2 {
                out.push_str(st.data.left);
            }
            for i in 0..ncols {
                if border != 0 || (!st.wrap_right_border && i > 0) {
                    out.push_str(if nl > 0 { st.header_nl_left } else { " " });
                }
                if !done[i] {
                    let line = &header_lines[i][nl];
                    let room = width_wrap[i].saturating_sub(line.width);
                    spaces(out, room / 2);
                    out.push_str(&line.text);
                    spaces(out, room.div_ceil(2));
                    if nl + 1 >= header_lines[i].len() {
                        remaining -= 1;
                        done[i] = true;
                    }
                } else {
                    spaces(out, width_wrap[i]);
                }
                if border != 0 || st.wrap_right_border {
                    out.push_str(if done[i] { " " } else { st.header_nl_right });
                }
                if border != 0 && i + 1 < ncols {
                    out.push_str(st.data.mid);
                }
            }
            nl += 1;
            if border == 2 {
                out.push_str(st.data.right);
            }
            out.push('\n');
        }
        horizontal_line(out, &width_wrap, border, &st.middle);
    }

    let mut wrap = vec![Wrap::None; ncols];
    // A result without columns has rows but no cells to print.
    for row in c.rows.iter().filter(|_| ncols > 0) {
        let lines: Vec<Vec<Line>> = row.iter().map(|v| format_lines(v)).collect();
        let mut cur = vec![0usize; ncols];
        let mut offset = vec![0usize; ncols];
        loop {
            let mut more = false;
            if border == 2 {
                out.push_str(st.data.left);
            }
            for j in 0..ncols {
                let last = j + 1 == ncols;
                let final_spaces = border == 2 || !last;
                if border != 0 {
                    out.push_str(match wrap[j] {
                        Wrap::Wrapped => st.wrap_left,
                        Wrap::Newline => st.nl_left,
                        Wrap::None => " ",
                    });
                }
                let mut shown = width_wrap[j];
                match lines[j].get(cur[j]) {
                    None => {
                        if final_spaces {
                            spaces(out, width_wrap[j]);
                        }
                    }
                    Some(line) => {
                        let rest = &line.text[offset[j]..];
                        let (bytes, w) = prefix_fitting(rest, width_wrap[j]);
                        shown = w.min(width_wrap[j]);
                        if c.aligns[j] == Align::Right {
                            spaces(out, width_wrap[j] - shown);
                        }
                        out.push_str(&rest[..bytes]);
                        offset[j] += bytes;
                        if offset[j] < line.text.len() {
                            more = true;
                        } else {
                            cur[j] += 1;
                            if cur[j] < lines[j].len() {
                                more = true;
                            }
                            offset[j] = 0;
                        }
                    }
                }
                wrap[j] = if cur[j] < lines[j].len() {
                    if offset[j] != 0 {
                        Wrap::Wrapped
                    } else if cur[j] != 0 {
                        Wrap::Newline
                    } else {
                        Wrap::None
                    }
                } else {
                    Wrap::None
                };
                if c.aligns[j] != Align::Right && (final_spaces || wrap[j] != Wrap::None) {
                    spaces(out, width_wrap[j] - shown);
                }
                match wrap[j] {
                    Wrap::Wrapped => out.push_str(st.wrap_right),
                    Wrap::Newline => out.push_str(st.nl_right),
                    Wrap::None if final_spaces => out.push(' '),
                    Wrap::None => {}
                }
                if border != 0 && !last {
                    out.push_str(match wrap[j + 1] {
                        Wrap::Wrapped => st.midvrule_wrap,
                        Wrap::Newline => st.midvrule_nl,
                        Wrap::None if cur[j + 1] >= lines[j + 1].len() => st.midvrule_blank,
                        Wrap::None => st.data.mid,
                    });
                }
            }
            if border == 2 {
                out.push_str(st.data.right);
            }
            out.push('\n');
            if !more {
                break;
            }
        }
    }

    if border == 2 {
        horizontal_line(out, &width_wrap, border, &st.bottom);
    }
    if !opt.tuples_only {
        for f in c.footers_with_default() {
            out.push_str(&f);
            out.push('\n');
        }
    }
    out.push('\n');
    pager_lines
}

/// The line above each record: `-[ RECORD 1 ]----+------`.
fn record_line(
    out: &mut String,
    st: &Style,
    border: u8,
    record: Option<usize>,
    hwidth: usize,
    dwidth: usize,
    rule: &Rule,
) {
    let fill = if border > 0 { rule.h } else { " " };
    match border {
        2 => {
            out.push_str(rule.left);
            out.push_str(rule.h);
        }
        1 => out.push_str(rule.h),
        _ => {}
    }
    let mut reclen: isize = 0;
    if let Some(n) = record {
        let label = if border == 0 {
            format!("* Record {n}")
        } else {
            format!("[ RECORD {n} ]")
        };
        reclen = label.len() as isize;
        out.push_str(&label);
    }
    if border != 2 {
        reclen += 1;
    }
    for _ in reclen.max(0)..hwidth as isize {
        out.push_str(fill);
    }
    reclen -= hwidth as isize;
    let mut next = || {
        let r = reclen;
        reclen -= 1;
        r <= 0
    };
    if border > 0 {
        if next() {
            out.push_str(rule.h);
        }
        if next() {
            out.push_str(rule.mid);
        }
        if next() {
            out.push_str(rule.h);
        }
    } else if next() {
        out.push(' ');
    }
    for _ in reclen.max(0)..dwidth as isize {
        out.push_str(fill);
    }
    if border == 2 {
        out.push_str(rule.h);
        out.push_str(rule.right);
    }
    let _ = st;
    out.push('\n');
}

/// Expanded display: a block per row, a line per column.
pub fn vertical(out: &mut String, c: &Content, columns: usize) -> PagerLines {
    let opt = c.opt;
    let border = opt.border.min(2);
    let st = style(opt.line_style);
    let old = opt.line_style == LineStyle::OldAscii;
    let ncols = c.headers.len();

    if c.rows.is_empty() || ncols == 0 {
        if !opt.tuples_only {
            for f in c.footers_with_default() {
                out.push_str(&f);
                out.push('\n');
            }
        }
        out.push('\n');
        return c.pager_lines(true);
    }
    let pager_lines = c.pager_lines(true);

    let (mut hwidth, mut hmultiline) = (0, false);
    for h in &c.headers {
        let (w, lines) = size(h);
        hwidth = hwidth.max(w);
        hmultiline |= lines > 1;
    }
    let (mut dwidth, mut dmultiline) = (0, false);
    for row in &c.rows {
        for v in row {
            let (w, lines) = size(v);
            dwidth = dwidth.max(w);
            dmultiline |= lines > 1;
        }
    }

    if let Some(title) = c.title() {
        out.push_str(title);
        out.push('\n');
    }

    // Wrapped: the data column's width fits the terminal (psql 15 does
    // this in the wrapped format only; the aligned one keeps the widest
    // value's width even when the record lines are longer).
    if opt.format == Format::Wrapped {
        let mut swidth = match border {
            0 => 1 + usize::from(hmultiline),
            1 => 3 + usize::from(hmultiline && old),
            _ => 7,
        };
        if dmultiline && border < 2 && !old {
            swidth += 1;
        }
        let mut rwidth = 0;
        if !opt.tuples_only {
            rwidth = c.rows.len().to_string().len()
                + match border {
                    0 => 9,
                    1 => 12,
                    _ => 15,
                };
        }
        dwidth = loop {
            let width = (hwidth + swidth + dwidth).max(rwidth);
            let new = if columns > 0 {
                let min_width = (hwidth + swidth + 3).max(rwidth);
                if columns >= width {
                    width - hwidth - swidth
                } else if columns < min_width {
                    min_width - hwidth - swidth
                } else {
                    columns - hwidth - swidth
                }
            } else {
                width - hwidth - swidth
            };
            if new < dwidth && !dmultiline && border < 2 && !old {
                dmultiline = true;
                swidth += 1;
            } else {
                break new;
            }
        };
    }

    let mut record = 1;
    for (r, row) in c.rows.iter().enumerate() {
        for (i, value) in row.iter().enumerate() {
            let rule = if r == 0 && i == 0 {
                &st.top
            } else {
                &st.middle
            };
            if i == 0 {
                let lhwidth = hwidth + usize::from(border < 2 && hmultiline && old);
                if !opt.tuples_only {
                    record_line(out, st, border, Some(record), lhwidth, dwidth, rule);
                    record += 1;
                } else if r != 0 || border == 2 {
                    record_line(out, st, border, None, lhwidth, dwidth, rule);
                }
            }
            let hlines = format_lines(c.headers[i]);
            let dlines = format_lines(value);
            let (mut hline, mut dline) = (0, 0);
            let (mut hcomplete, mut dcomplete) = (false, false);
            let mut offset = 0;
            let mut to_output = dlines[0].width;
            while !dcomplete || !hcomplete {
                if border == 2 {
                    out.push_str(st.data.left);
                }
                if !hcomplete {
                    if border == 2 || (hmultiline && old) {
                        out.push_str(if hline > 0 { st.header_nl_left } else { " " });
                    }
                    let line = &hlines[hline];
                    out.push_str(&line.text);
                    spaces(out, hwidth.saturating_sub(line.width));
                    let mark = border > 0 || (hmultiline && !old);
                    if hline + 1 < hlines.len() {
                        if mark {
                            out.push_str(st.header_nl_right);
                        }
                        hline += 1;
                    } else {
                        if mark {
                            out.push(' ');
                        }
                        hcomplete = true;
                    }
                } else {
                    let mut w = hwidth + usize::from(border);
                    if border < 2 && hmultiline && old {
                        w += 1;
                    }
                    if border == 0 && !old && hmultiline {
                        w += 1;
                    }
                    spaces(out, w.max(1));
                }
                if border > 0 {
                    out.push_str(if offset > 0 {
                        st.midvrule_wrap
                    } else if dline == 0 {
                        st.data.mid
                    } else {
                        st.midvrule_nl
                    });
                }
                if !dcomplete {
                    out.push_str(if offset == 0 { " " } else { st.wrap_left });
                    let rest = &dlines[dline].text[offset..];
                    let (bytes, w) = prefix_fitting(rest, dwidth);
                    out.push_str(&rest[..bytes]);
                    to_output = to_output.saturating_sub(w);
                    offset += bytes;
                    let pad = dwidth.saturating_sub(w);
                    let marks = border > 1 || (dmultiline && !old);
                    if to_output > 0 {
                        if marks {
                            spaces(out, pad);
                            out.push_str(st.wrap_right);
                        }
                    } else if dline + 1 < dlines.len() {
                        if marks {
                            spaces(out, pad);
                            out.push_str(st.nl_right);
                        }
                        dline += 1;
                        offset = 0;
                        to_output = dlines[dline].width;
                    } else {
                        if border > 1 {
                            spaces(out, pad);
                            out.push(' ');
                        }
                        dcomplete = true;
                    }
                    if border == 2 {
                        out.push_str(st.data.right);
                    }
                    out.push('\n');
                } else if border < 2 {
                    out.push('\n');
                } else {
                    spaces(out, dwidth + 2);
                    out.push_str(st.data.right);
                    out.push('\n');
                }
            }
        }
    }

    if border == 2 {
        record_line(out, st, border, None, hwidth, dwidth, &st.bottom);
    }
    if !opt.tuples_only {
        if let Some(footers) = &c.footers {
            if border < 2 {
                out.push('\n');
            }
            for f in footers.iter() {
                out.push_str(f);
                out.push('\n');
            }
        }
    }
    out.push('\n');
    pager_lines
}
