// The demo page in a real headless browser (Debian's chromium driven by playwright-core): a tutor
// and a tutee join event 101 from two pages, see each other's typing indicator and messages, then
// the page's read ticks, a reaction, an edit, a deletion and a picture attached with 📎.
// Usage: node demo_page.mjs URL SCREENSHOT_PATH
import { deflateSync } from "node:zlib";
import { chromium } from "playwright-core";
import { fail, run } from "./lib.mjs";

/** A PNG of w x h blue pixels. */
function png(w, h) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 6, 0, 0, 0], 8);
  const row = Buffer.concat([Buffer.from([0]), Buffer.alloc(w * 4, Buffer.from([30, 60, 200, 255]))]);
  const raw = Buffer.concat(Array.from({ length: h }, () => row));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr), chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

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

    // Read receipts: the tutee's page marks what it showed as read, so the tutor's message gets the
    // read ticks on the tutor's page (and the tutee's question on the tutee's page).
    const answerId = await tutor.getAttribute(".msg.mine:has-text('uv − ∫v du')", "data-id");
    const answer = `.msg[data-id="${answerId}"]`;
    await tutor.waitForSelector(`${answer} .ticks.read`, { timeout: 10000 });
    const ticks = await tutor.textContent(`${answer} .ticks`);
    if (ticks !== "✓✓") fail(`read ticks shown as ${JSON.stringify(ticks)}`);
    await tutee.waitForSelector(".msg.mine:has-text('integration by parts') .ticks.read", { timeout: 10000 });
    if ((await tutee.$$(`${answer} .ticks`)).length !== 0) fail("ticks on the other member's message");

    // A reaction: the tutee's 👍 on the tutor's message is counted on both pages.
    await tutee.click(`${answer} button.reaction[data-emoji="👍"]`);
    for (const page of [tutor, tutee]) {
      await page.waitForFunction(
        (sel) => document.querySelector(`${sel} button.reaction[data-emoji="👍"]`)?.textContent === "👍 1",
        answer, { timeout: 10000 });
    }
    if ((await tutee.getAttribute(`${answer} button.reaction[data-emoji="👍"]`, "aria-pressed")) !== "true") {
      fail("the tutee's own reaction is not shown as pressed");
    }
    if ((await tutor.getAttribute(`${answer} button.reaction[data-emoji="👍"]`, "aria-pressed")) !== "false") {
      fail("the tutee's reaction is shown as the tutor's");
    }

    // An edit: only the author has the buttons; edit puts the text in #text, "Save edit" sends it.
    if ((await tutee.$$(`${answer} button.edit, ${answer} button.delete`)).length !== 0) {
      fail("edit/delete offered on someone else's message");
    }
    await tutor.click(`${answer} button.edit`);
    const editing = await tutor.inputValue("#text");
    if (editing !== "Sure! ∫u dv = uv − ∫v du 🙂") fail(`edit starts from ${JSON.stringify(editing)}`);
    if ((await tutor.textContent("#sendbtn")) !== "Save edit") fail("send button not in edit mode");
    const edited = "Sure! ∫u dv = uv − ∫v du, pick u to simplify 🙂";
    await tutor.fill("#text", edited);
    await tutor.click("#sendbtn");
    for (const page of [tutor, tutee]) {
      await page.waitForFunction(
        ([sel, text]) => {
          const el = document.querySelector(sel);
          return el?.firstChild.textContent === text && el.querySelector(".meta").textContent.includes("(edited)");
        },
        [answer, edited], { timeout: 10000 });
    }
    if ((await tutor.textContent("#sendbtn")) !== "Send" || (await tutor.inputValue("#text")) !== "") {
      fail("the form did not leave edit mode");
    }
    const kept = await tutee.textContent(`${answer} button.reaction[data-emoji="👍"]`);
    if (kept !== "👍 1") fail(`reaction after the edit: ${kept}`);

    // A deletion: the tutor's third message becomes "message deleted" on both pages.
    await tutor.fill("#text", "Oops, wrong chat");
    await tutor.click("#sendbtn");
    await tutee.waitForSelector(".msg:has-text('wrong chat')", { timeout: 10000 });
    const oopsId = await tutor.getAttribute(".msg.mine:has-text('wrong chat')", "data-id");
    const oops = `.msg[data-id="${oopsId}"]`;
    await tutor.click(`${oops} button.delete`);
    for (const page of [tutor, tutee]) {
      await page.waitForFunction(
        (sel) => document.querySelector(`${sel} .deleted`)?.textContent === "message deleted",
        oops, { timeout: 10000 });
      const left = await page.$$(`${oops} button`);
      if (left.length !== 0) fail(`a deleted message still has ${left.length} buttons`);
      const texts = await page.$$eval(".msg", (els) => els.map((e) => e.firstChild.textContent));
      if (JSON.stringify(texts) !== JSON.stringify(["Could you explain integration by parts?", edited, "message deleted"])) {
        fail(`messages shown at the end: ${JSON.stringify(texts)}`);
      }
    }
    // A file: the tutor attaches a picture (📎), the tutee's page shows it inline.
    await tutor.fill("#text", "Here is the graph");
    await tutor.setInputFiles("#file", { name: "graph.png", mimeType: "image/png", buffer: png(120, 80) });
    for (const page of [tutor, tutee]) {
      await page.waitForFunction(() => {
        const img = document.querySelector('.msg img[alt="graph.png"]');
        return img && img.complete && img.naturalWidth === 120 && img.naturalHeight === 80;
      }, null, { timeout: 10000 });
      const caption = await page.textContent('.msg:has(img[alt="graph.png"]) .text');
      if (caption !== "Here is the graph") fail(`caption shown as ${JSON.stringify(caption)}`);
    }

    const errors = await tutee.$$eval(".error", (els) => els.map((e) => e.textContent));
    if (errors.length) fail(`chat errors shown: ${JSON.stringify(errors)}`);

    if (screenshot) await tutee.screenshot({ path: screenshot });
    console.log("ok");
  } finally {
    await browser.close();
  }
});
