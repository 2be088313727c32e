package conformance

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/png"
)

// pngImage is a 1x1 red PNG, encoded once at start-up.
var pngImage = redPixelPNG()

// wavAudio is a short mono 8 kHz 16-bit PCM WAV of silence.
var wavAudio = silentWAV(8000, 80)

func redPixelPNG() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 1, 1))
	img.Set(0, 0, color.RGBA{R: 0xff, A: 0xff})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic("conformance: encoding the test PNG: " + err.Error())
	}
	return buf.Bytes()
}

// silentWAV builds a RIFF/WAVE file of n zero samples at rate Hz, mono, 16 bit.
func silentWAV(rate, n uint32) []byte {
	const channels, bits = 1, 16
	dataLen := n * channels * bits / 8
	var buf bytes.Buffer
	w := func(v any) { binary.Write(&buf, binary.LittleEndian, v) }
	buf.WriteString("RIFF")
	w(uint32(36 + dataLen))
	buf.WriteString("WAVEfmt ")
	w(uint32(16))                         // fmt chunk size
	w(uint16(1))                          // PCM
	w(uint16(channels))                   //
	w(rate)                               //
	w(uint32(rate * channels * bits / 8)) // byte rate
	w(uint16(channels * bits / 8))        // block align
	w(uint16(bits))                       //
	buf.WriteString("data")
	w(dataLen)
	buf.Write(make([]byte, dataLen))
	return buf.Bytes()
}
