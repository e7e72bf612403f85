//! Scripted faults for the worker's seam: a test arms a hook for a step, and it fires once, at that step's next
//! occurrence, in whichever job or flush reaches it first.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use jobs::worker::{Faults, Step};
use tokio::sync::{Notify, mpsc, oneshot};

/// What an armed fault does when its step comes: its future's `Err` is what the step then sees.
pub type Hook = Box<dyn FnOnce() -> BoxFuture<'static, Result<(), String>> + Send>;

/// Faults armed one at a time or several, each firing once; every firing is reported on `fired`.
pub struct ScriptedFaults {
    armed: Mutex<Vec<(Step, Hook)>>,
    fired_tx: mpsc::UnboundedSender<Step>,
    fired: tokio::sync::Mutex<mpsc::UnboundedReceiver<Step>>,
}

impl ScriptedFaults {
    pub fn new() -> Arc<Self> {
        let (fired_tx, fired) = mpsc::unbounded_channel();
        Arc::new(Self {
            armed: Mutex::new(Vec::new()),
            fired_tx,
            fired: tokio::sync::Mutex::new(fired),
        })
    }

    /// Run `hook` at the next occurrence of `step`.
    pub fn arm(&self, step: Step, hook: Hook) {
        self.armed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((step, hook));
    }

    /// The next occurrence of `step` fails as if its connection died after the server did the work.
    pub fn fail_once(&self, step: Step) {
        self.arm(
            step,
            Box::new(|| Box::pin(async { Err("injected: connection lost".to_owned()) })),
        );
    }

    /// The next occurrence of `step` panics (at `Step::Ran`: a panicking job handler).
    pub fn panic_once(&self, step: Step) {
        self.arm(step, Box::new(|| Box::pin(async { injected_panic() })));
    }

    /// The next occurrence of `step` waits until `release` is notified.
    pub fn hold_once(&self, step: Step, release: Arc<Notify>) {
        self.arm(
            step,
            Box::new(move || {
                Box::pin(async move {
                    release.notified().await;
                    Ok(())
                })
            }),
        );
    }

    /// The next occurrence of `step` stops there until the test resumes it (with the result the step then
    /// sees): the test acts (stops a server, freezes another) at exactly that point of the cycle.
    pub fn pause_once(&self, step: Step) -> Paused {
        let (reached_tx, reached) = oneshot::channel();
        let (resume, resumed) = oneshot::channel::<Result<(), String>>();
        self.arm(
            step,
            Box::new(move || {
                Box::pin(async move {
                    let _ = reached_tx.send(());
                    resumed.await.unwrap_or(Ok(()))
                })
            }),
        );
        Paused { reached, resume }
    }

    /// Wait until an armed fault fires; `None` if none did within `within`.
    pub async fn next_fired(&self, within: std::time::Duration) -> Option<Step> {
        let mut fired = self.fired.lock().await;
        tokio::time::timeout(within, fired.recv())
            .await
            .ok()
            .flatten()
    }

    /// How many armed faults have not fired yet.
    pub fn still_armed(&self) -> usize {
        self.armed.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

fn injected_panic() -> Result<(), String> {
    panic!("injected panic")
}

impl Faults for ScriptedFaults {
    fn at(&self, step: Step) -> BoxFuture<'_, Result<(), String>> {
        let hook = {
            let mut armed = self.armed.lock().unwrap_or_else(|p| p.into_inner());
            armed
                .iter()
                .position(|(s, _)| *s == step)
                .map(|i| armed.remove(i).1)
        };
        match hook {
            None => Box::pin(std::future::ready(Ok(()))),
            Some(hook) => {
                let _ = self.fired_tx.send(step);
                hook()
            }
        }
    }
}

/// A step stopped by `pause_once`.
pub struct Paused {
    reached: oneshot::Receiver<()>,
    resume: oneshot::Sender<Result<(), String>>,
}

impl Paused {
    /// Wait until the worker reaches the step (fail the test after `within`).
    pub async fn reached(&mut self, within: std::time::Duration) {
        tokio::time::timeout(within, &mut self.reached)
            .await
            .expect("the worker reached the paused step in time")
            .expect("fault hook alive");
    }

    /// Let the step go on, seeing `result`.
    pub fn resume(self, result: Result<(), String>) {
        let _ = self.resume.send(result);
    }
}
