//! Where each partition resumes: the offsets stored in Postgres (in each batch's transaction) decide which of the
//! broker's messages to write, and when to seek back because the broker skipped some.

use std::collections::HashMap;

/// What to do with a batch, given where Postgres says each partition resumes.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct BatchPlan {
    /// Indexes of the messages to ingest.
    pub(super) keep: Vec<usize>,
    /// Partitions the broker delivered past our stored offset: seek back there (their messages are dropped).
    pub(super) seek: Vec<(String, i32, i64)>,
}

/// Keep messages at or after the stored resume point; a partition whose first message is *past* it (a gap) is
/// dropped and sought back. A partition with no stored point is taken as the broker gives it.
pub(super) fn plan(
    messages: &[(String, i32, i64)],
    resume: &HashMap<(String, i32), i64>,
) -> BatchPlan {
    let mut first: HashMap<(&str, i32), i64> = HashMap::new();
    for (topic, partition, offset) in messages {
        let e = first.entry((topic.as_str(), *partition)).or_insert(*offset);
        *e = (*e).min(*offset);
    }
    let mut plan = BatchPlan::default();
    for ((topic, partition), first) in &first {
        if let Some(&next) = resume.get(&((*topic).to_owned(), *partition))
            && *first > next
        {
            plan.seek.push(((*topic).to_owned(), *partition, next));
        }
    }
    for (i, (topic, partition, offset)) in messages.iter().enumerate() {
        let gap = plan
            .seek
            .iter()
            .any(|(t, p, _)| t == topic && p == partition);
        let done = resume
            .get(&(topic.clone(), *partition))
            .is_some_and(|next| offset < next);
        if !gap && !done {
            plan.keep.push(i);
        }
    }
    plan.seek.sort();
    plan
}

/// Where to seek when a partition resumed past `next`: a growing step before it, because tansu answers a fetch
/// that starts inside a record batch with the *following* batch (measured: a fetch at 2000 returned 2156 first),
/// so seeking to `next` itself would skip the rest of its batch. Messages below `next` are dropped by `plan`.
/// `None` once the step exceeds any batch size: the offsets are really gone (e.g. retention).
pub(super) fn seek_back(
    steps: &mut HashMap<(String, i32), i64>,
    topic: &str,
    partition: i32,
    next: i64,
) -> Option<i64> {
    let step = steps.entry((topic.to_owned(), partition)).or_insert(0);
    *step = if *step == 0 { 64 } else { *step * 2 };
    (*step <= 1 << 20).then(|| (next - *step).max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(list: &[(i32, i64)]) -> Vec<(String, i32, i64)> {
        list.iter().map(|&(p, o)| ("t".to_owned(), p, o)).collect()
    }

    #[test]
    fn messages_before_the_stored_offset_are_skipped_and_a_gap_is_sought_back() {
        let resume: HashMap<(String, i32), i64> =
            [(("t".to_owned(), 0), 10), (("t".to_owned(), 1), 2000)].into();
        let batch = msgs(&[
            (0, 8),
            (0, 9),
            (0, 10),
            (0, 11),
            (1, 3051),
            (1, 3052),
            (2, 5),
        ]);
        let plan = plan(&batch, &resume);
        assert_eq!(
            plan.keep,
            vec![2, 3, 6],
            "offsets 8 and 9 were ingested; partition 1 has a gap; partition 2 is new"
        );
        assert_eq!(plan.seek, vec![("t".to_owned(), 1, 2000)]);
    }

    #[test]
    fn seeking_back_steps_further_each_time_and_gives_up_eventually() {
        let mut steps = HashMap::new();
        assert_eq!(seek_back(&mut steps, "t", 1, 2000), Some(1936));
        assert_eq!(seek_back(&mut steps, "t", 1, 2000), Some(1872));
        assert_eq!(seek_back(&mut steps, "t", 1, 2000), Some(1744));
        while seek_back(&mut steps, "t", 1, 2000).is_some() {}
        assert_eq!(seek_back(&mut steps, "t", 1, 2000), None);
    }

    #[test]
    fn a_batch_that_continues_where_we_stopped_is_kept_whole() {
        let resume: HashMap<(String, i32), i64> = [(("t".to_owned(), 0), 10)].into();
        let plan = plan(&msgs(&[(0, 10), (0, 11)]), &resume);
        assert_eq!(
            plan,
            BatchPlan {
                keep: vec![0, 1],
                seek: vec![]
            }
        );
    }
}
