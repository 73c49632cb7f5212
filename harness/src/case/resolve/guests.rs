//! The lab a case describes: `[guests.*]`, `[segments.*]` (one segment `lan` with every guest
//! when left out), `[disks.*]` and `[shelves.*]` (disks behind one controller).

use std::collections::BTreeMap;

use super::{key_offset, no_repeats, Cx, Names};
use crate::case::raw::{Named, RawDisk, RawGuest, RawSegment, RawShelf, Str};
use crate::case::{Disk, Guest, Segment, Shelf, LAB_GUESTS};
use crate::disks::WriteCache;

/// The guests, segments and disks of a case, and their names for references.
pub(super) struct Lab {
    pub guests: Vec<Guest>,
    pub segments: Vec<Segment>,
    pub disks: Vec<Disk>,
    pub shelves: Vec<Shelf>,
    pub guest_names: Names,
    pub segment_names: Names,
    pub disk_names: Names,
    pub shelf_names: Names,
}

impl Lab {
    /// The guests on a segment, if it exists.
    pub fn members(&self, segment: &str) -> Option<Vec<String>> {
        self.segments
            .iter()
            .find(|s| s.name == segment)
            .map(|s| s.guests.clone())
    }

    pub fn disk(&self, name: &str) -> Option<&Disk> {
        self.disks.iter().find(|d| d.name == name)
    }

    /// The disks of a shelf, if it exists.
    pub fn shelf_disks(&self, shelf: &str) -> Option<&[String]> {
        self.shelves
            .iter()
            .find(|s| s.name == shelf)
            .map(|s| s.disks.as_slice())
    }
}

pub(super) fn build(
    cx: &mut Cx,
    raw_guests: &Named<RawGuest>,
    raw_segments: Option<&Named<RawSegment>>,
    raw_disks: &Named<RawDisk>,
    raw_shelves: &Named<RawShelf>,
) -> Lab {
    let guests = guests(cx, raw_guests);
    let guest_names = Names::new("guest", guests.iter().map(|g| g.name.clone()));
    let segments = segments(cx, raw_guests, raw_segments, &guests, &guest_names);
    let segment_names = Names::new("segment", segments.iter().map(|s| s.name.clone()));
    let mut disks = disks(cx, raw_disks, &guest_names);
    let disk_names = Names::new("disk", disks.iter().map(|d| d.name.clone()));
    let shelves = shelves(cx, raw_shelves, raw_disks, &mut disks, &disk_names);
    let shelf_names = Names::new("shelf", shelves.iter().map(|s| s.name.clone()));
    Lab {
        guests,
        segments,
        disks,
        shelves,
        guest_names,
        segment_names,
        disk_names,
        shelf_names,
    }
}

fn guests(cx: &mut Cx, raw: &Named<RawGuest>) -> Vec<Guest> {
    let mut guests = Vec::new();
    if raw.0.is_empty() {
        cx.err(
            key_offset(cx.sources, "guests"),
            "a case needs at least one guest",
        );
    }
    for (name, g) in &raw.0 {
        if !LAB_GUESTS.contains(&name.get_ref().as_str()) {
            cx.at(
            name,
            format!(
                "`{}` is not a lab guest name: use one of {} (the names with an address in the images' /etc/hosts)",
                name.get_ref(),
                LAB_GUESTS.join(", ")
            ),
        );
        }
        cx.name(&g.image, "image");
        if let Some(r) = &g.role {
            cx.name(r, "role");
        }
        guests.push(Guest {
            name: name.get_ref().clone(),
            image: g.image.get_ref().clone(),
            role: g.role.as_ref().unwrap_or(&g.image).get_ref().clone(),
        });
    }
    guests
}

fn segments(
    cx: &mut Cx,
    raw_guests: &Named<RawGuest>,
    raw: Option<&Named<RawSegment>>,
    guests: &[Guest],
    guest_names: &Names,
) -> Vec<Segment> {
    let mut segments = Vec::new();
    match raw {
        None => segments.push(Segment {
            name: "lan".into(),
            guests: guests.iter().map(|g| g.name.clone()).collect(),
        }),
        Some(raw_segments) => {
            if raw_segments.0.is_empty() {
                cx.err(
                key_offset(cx.sources, "segments"),
                "`segments` needs at least one segment (or leave it out: one segment `lan` then holds every guest)",
            );
            }
            let mut on: BTreeMap<String, String> = BTreeMap::new();
            for (name, s) in &raw_segments.0 {
                cx.name(name, "segment");
                if s.guests.get_ref().is_empty() {
                    cx.at(
                        &s.guests,
                        format!("segment `{}` needs at least one guest", name.get_ref()),
                    );
                }
                let mut members = Vec::new();
                for g in s.guests.get_ref() {
                    if !guest_names.refer(cx, g) {
                        continue;
                    }
                    if let Some(other) = on.get(g.get_ref()) {
                        cx.at(
                            g,
                            format!(
                                "guest `{}` is already on segment `{other}`: a guest has one network port",
                                g.get_ref()
                            ),
                        );
                        continue;
                    }
                    on.insert(g.get_ref().clone(), name.get_ref().clone());
                    members.push(g.get_ref().clone());
                }
                segments.push(Segment {
                    name: name.get_ref().clone(),
                    guests: members,
                });
            }
            // An empty segment (or table) is the error to show, not its consequences.
            let some_empty = raw_segments.0.is_empty()
                || raw_segments.0.iter().any(|(_, s)| s.guests.get_ref().is_empty());
            for (name, _) in &raw_guests.0 {
                if !some_empty
                    && LAB_GUESTS.contains(&name.get_ref().as_str())
                    && !on.contains_key(name.get_ref())
                {
                    cx.at(name, format!("guest `{}` is on no segment", name.get_ref()));
                }
            }
        }
    }
    segments
}

fn disks(cx: &mut Cx, raw: &Named<RawDisk>, guest_names: &Names) -> Vec<Disk> {
    let mut disks = Vec::new();
    for (name, d) in &raw.0 {
        cx.name(name, "disk");
        if name.get_ref().len() > crate::disks::SERIAL_MAX {
            cx.at(
            name,
            format!(
                "disk name `{}` is longer than {} characters: the guest sees it as the disk's serial, which holds no more",
                name.get_ref(),
                crate::disks::SERIAL_MAX
            ),
        );
        }
        guest_names.refer(cx, &d.guest);
        let size_bytes = match crate::recipe::parse_size(d.size.get_ref()) {
            Some(n) if n > 0 => n,
            _ => {
                cx.at(
                    &d.size,
                    format!(
                        "bad size {:?}: use a number with K, M or G, e.g. \"1G\"",
                        d.size.get_ref()
                    ),
                );
                0
            }
        };
        for f in &d.nbdkit_filters {
            cx.name(f, "nbdkit filter");
        }
        no_repeats(cx, &d.nbdkit_filters, "filter");
        disks.push(Disk {
            name: name.get_ref().clone(),
            guest: d.guest.get_ref().clone(),
            size_bytes,
            nbdkit_filters: d.nbdkit_filters.iter().map(|f| f.get_ref().clone()).collect(),
            write_cache: d
                .write_cache
                .as_ref()
                .map(|w| write_cache(cx, w))
                .unwrap_or_default(),
        });
    }
    disks
}

fn write_cache(cx: &mut Cx, s: &Str) -> WriteCache {
    WriteCache::parse(s.get_ref()).unwrap_or_else(|| {
        cx.at(
            s,
            format!(
                "write_cache must be \"none\", \"honest\" (flushes reach the disk) or \"lying\" (flushes are acknowledged and persist nothing), not {:?}",
                s.get_ref()
            ),
        );
        WriteCache::None
    })
}

/// `[shelves.*]`: each disk in at most one shelf, a shelf's disks on one guest (a shelf is
/// cabled to one machine); a shelf's `write_cache` is its disks' (which then set none).
fn shelves(
    cx: &mut Cx,
    raw: &Named<RawShelf>,
    raw_disks: &Named<RawDisk>,
    disks: &mut [Disk],
    disk_names: &Names,
) -> Vec<Shelf> {
    let mut shelves: Vec<Shelf> = Vec::new();
    for (name, s) in &raw.0 {
        cx.name(name, "shelf");
        if s.disks.get_ref().is_empty() {
            cx.at(
                &s.disks,
                format!("shelf `{}` needs at least one disk", name.get_ref()),
            );
        }
        no_repeats(cx, s.disks.get_ref(), "disk");
        let cache = s.write_cache.as_ref().map(|w| (w, write_cache(cx, w)));
        let mut members: Vec<String> = Vec::new();
        for d in s.disks.get_ref() {
            if !disk_names.refer(cx, d) || members.contains(d.get_ref()) {
                continue;
            }
            if let Some(other) = shelves.iter().find(|o| o.disks.contains(d.get_ref())) {
                cx.at(
                    d,
                    format!(
                        "disk `{}` is already in shelf `{}`: a disk sits behind one controller",
                        d.get_ref(),
                        other.name
                    ),
                );
                continue;
            }
            let guest_of = |n: &str| disks.iter().find(|x| x.name == n).map(|x| x.guest.clone());
            if let (Some(first), Some(here)) = (members.first(), guest_of(d.get_ref())) {
                let there = guest_of(first).unwrap_or_default();
                if here != there {
                    cx.at(
                        d,
                        format!(
                            "disk `{}` is on guest {here}, but shelf `{}`'s disk `{first}` is on {there}: a shelf is cabled to one guest",
                            d.get_ref(),
                            name.get_ref()
                        ),
                    );
                    continue;
                }
            }
            if let Some((w, cache)) = &cache {
                let own = raw_disks
                    .0
                    .iter()
                    .find(|(n, _)| n.get_ref() == d.get_ref())
                    .and_then(|(_, r)| r.write_cache.as_ref());
                if own.is_some() {
                    cx.at(
                        *w,
                        format!(
                            "disk `{}` of shelf `{}` sets its own write_cache: a shelf's cache is its disks', so set it on the shelf or on each disk",
                            d.get_ref(),
                            name.get_ref()
                        ),
                    );
                }
                if let Some(disk) = disks.iter_mut().find(|x| x.name == *d.get_ref()) {
                    disk.write_cache = *cache;
                }
            }
            members.push(d.get_ref().clone());
        }
        shelves.push(Shelf {
            name: name.get_ref().clone(),
            disks: members,
        });
    }
    shelves
}
