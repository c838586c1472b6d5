// The demo page in a real headless browser (Debian's chromium driven by playwright-core): a tutor
// and a tutee join event 101 from two pages, see each other's typing indicator and messages.
// Usage: node demo_page.mjs URL SCREENSHOT_PATH
import { chromium } from "playwright-core";
import { fail, run } from "./lib.mjs";

const [url, screenshot] = process.argv.slice(2);

run(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 760, height: 640 } });
    const tutor = await context.newPage();
    const tutee = await context.newPage();
    for (const page of [tutor, tutee]) page.on("pageerror", (e) => fail(`page error: ${e}`));
    await tutor.goto(`${url}/?event=101&role=tutor&autojoin=1`);
    await tutor.waitForFunction(() => document.getElementById("status").textContent.includes("in chat_101"), null, { timeout: 10000 });
    await tutee.goto(`${url}/?event=101&role=tutee&autojoin=1`);
    await tutee.waitForFunction(() => document.getElementById("status").textContent.includes("2 connected"), null, { timeout: 10000 });
    await tutor.waitForSelector("text=user 2 (tutee) joined; 2 connected", { timeout: 10000 });

    // Typing shows on the other page.
    await tutee.type("#text", "Could you explain");
    await tutor.waitForSelector("#typing:has-text('tutee 2 is typing')", { timeout: 10000 });
    await tutee.fill("#text", "Could you explain integration by parts?");
    await tutee.click("#sendbtn");
    await tutor.waitForSelector(".msg:has-text('integration by parts')", { timeout: 10000 });
    await tutor.waitForFunction(() => document.getElementById("typing").textContent === "", null, { timeout: 10000 });

    await tutor.fill("#text", "Sure! ∫u dv = uv − ∫v du 🙂");
    await tutor.click("#sendbtn");
    await tutee.waitForSelector(".msg:has-text('uv − ∫v du')", { timeout: 10000 });
    const meta = await tutee.textContent(".msg:has-text('uv − ∫v du') .meta");
    if (!meta.includes("Ada Lovelace (tutor)")) fail(`sender shown as ${meta}`);

    // Both pages show both messages, in order (each page receives its own copy too).
    for (const page of [tutor, tutee]) {
      await page.waitForFunction(() => document.querySelectorAll(".msg").length === 2, null, { timeout: 10000 });
      const texts = await page.$$eval(".msg", (els) => els.map((e) => e.firstChild.textContent));
      if (JSON.stringify(texts) !== JSON.stringify(["Could you explain integration by parts?", "Sure! ∫u dv = uv − ∫v du 🙂"])) {
        fail(`messages shown: ${JSON.stringify(texts)}`);
      }
    }
    if (screenshot) await tutee.screenshot({ path: screenshot });
    console.log("ok");
  } finally {
    await browser.close();
  }
});
